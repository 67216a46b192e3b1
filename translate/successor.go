package translate

import (
	"fmt"
	"maps"
)

// Successor returns a Translator for opts that inherits this one's VIP table, for a
// configuration reload: a host served before and after keeps its VIP, since Istio's sidecars and
// DNS proxies have it and a VIP must never move for a host while the bridge runs. vipCIDR must
// not change. The successor knows none of this one's services, so its first Translate renders
// everything (unchanged content gets unchanged versions) and releases the inherited VIPs of hosts
// no service wants any more. This Translator stays usable: a reload that is abandoned after
// building the successor loses nothing.
func (t *Translator) Successor(opts Options) (*Translator, error) {
	n, err := New(opts)
	if err != nil {
		return nil, err
	}
	if n.opts.VIPCIDR != t.opts.VIPCIDR {
		return nil, fmt.Errorf("translate options: vipCIDR: cannot change from %s to %s while running (VIPs would move); restart the bridge", t.opts.VIPCIDR, n.opts.VIPCIDR)
	}
	n.vips = t.vips.clone()
	n.inheritedVIPs = true
	return n, nil
}

func (a *vipAllocator) clone() *vipAllocator {
	return &vipAllocator{r: a.r, byHost: maps.Clone(a.byHost), used: maps.Clone(a.used)}
}

// retain releases the VIPs of hosts not in keep.
func (a *vipAllocator) retain(keep map[string]bool) {
	for h := range a.byHost {
		if !keep[h] {
			a.release(h)
		}
	}
}
