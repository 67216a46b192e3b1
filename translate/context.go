package translate

import (
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// The decisions about a service that involve other services: who owns a host, which VIP a host
// has, whether a namespace's WorkloadEntry cap admits a service. Each is recomputed only for the
// services a push touched (see Translate), and each gives the same answer as recomputing
// everything, which TestIncrementalMatchesRebuild checks.

// claim records the hosts a new service wants.
func (t *Translator) claim(e *entry, dirty map[string]bool) {
	if e.p.fatal != nil {
		return
	}
	for _, k := range append([]string{e.p.hostKey}, e.p.aliasKeys...) {
		t.claims[k] = append(t.claims[k], e)
		dirty[k] = true
	}
}

func (t *Translator) unclaim(e *entry, dirty map[string]bool) {
	if e.p.fatal != nil {
		return
	}
	for _, k := range append([]string{e.p.hostKey}, e.p.aliasKeys...) {
		cs := slices.DeleteFunc(t.claims[k], func(c *entry) bool { return c == e })
		if len(cs) == 0 {
			delete(t.claims, k)
		} else {
			t.claims[k] = cs
		}
		dirty[k] = true
	}
}

// primaryOwner is the service that owns host k as its primary host: of the services whose
// primary host it is, the one first by source. Nil when k is nobody's primary host.
func (t *Translator) primaryOwner(k string) *entry {
	var best *entry
	for _, c := range t.claims[k] {
		if c.p.hostKey == k && (best == nil || c.p.src < best.p.src) {
			best = c
		}
	}
	return best
}

func (t *Translator) ownsPrimary(e *entry) bool { return t.primaryOwner(e.p.hostKey) == e }

// aliasOwner is the service that serves host k as an alias: nobody when k is a service's primary
// host (an interface-level registration beats an application's alias), else the first by source
// of the claimants that own their own primary host.
// Results are memoised for the current call (claims do not change while contexts are worked
// out), since an interface that many applications serve would otherwise be rescanned by each.
func (t *Translator) aliasOwner(k string) *entry {
	if e, ok := t.aliasMemo[k]; ok {
		return e
	}
	var best *entry
	if t.primaryOwner(k) == nil {
		for _, c := range t.claims[k] {
			if c.p.hostKey != k && t.ownsPrimary(c) && (best == nil || c.p.src < best.p.src) {
				best = c
			}
		}
	}
	t.aliasMemo[k] = best
	return best
}

// hostContext works out which hosts the service owns.
func (t *Translator) hostContext(e *entry) *renderCtx {
	c := &renderCtx{}
	if e.p.fatal != nil {
		return c
	}
	if w := t.primaryOwner(e.p.hostKey); w != e {
		c.winner = w.p.src
		return c
	}
	c.primary = true
	for _, k := range e.p.aliasKeys {
		if t.aliasOwner(k) == e {
			c.aliases = append(c.aliases, k)
		}
	}
	return c
}

// vipHosts are the hosts that get a VIP in a context: the primary host, and with a TCP port each
// owned alias (which then has a ServiceEntry of its own).
func (t *Translator) vipHosts(p *prepared, c *renderCtx) []string {
	if !c.primary || !(p.tcp || t.opts.VIPFor == VIPForAll) {
		return nil
	}
	if !p.tcp {
		return []string{p.hostKey}
	}
	return append([]string{p.hostKey}, c.aliases...)
}

// assignVIPs releases the VIPs of hosts no longer served and allocates VIPs for new ones, then
// fills in each queued context's vips. It returns, per service, hosts left without a VIP.
func (t *Translator) assignVIPs(queue, removed []*entry, next map[*entry]*renderCtx) map[*entry][]string {
	wanted := map[string]bool{}
	var want []string
	for _, e := range queue {
		for _, h := range t.vipHosts(e.p, next[e]) {
			wanted[h] = true
			if _, ok := t.vips.get(h); !ok {
				want = append(want, h)
			}
		}
	}
	if t.inheritedVIPs {
		// A successor's first call sees every service: inherited VIPs no host wants now go.
		t.inheritedVIPs = false
		t.vips.retain(wanted)
	}
	// A host keeps its VIP while some service still serves it with one; ownership moving from one
	// service to another puts both in the queue, so looking at the queue is enough.
	for _, list := range [][]*entry{queue, removed} {
		for _, e := range list {
			if !e.hasCtx {
				continue
			}
			for _, h := range t.vipHosts(e.p, &e.ctx) {
				if !wanted[h] {
					t.vips.release(h)
				}
			}
		}
	}
	full := map[string]bool{}
	for _, h := range t.vips.allocate(want) {
		full[h] = true
	}
	var out map[*entry][]string
	for _, e := range removed {
		delete(t.starved, e)
	}
	for _, e := range queue {
		delete(t.starved, e)
		c := next[e]
		if !c.primary {
			continue
		}
		c.vips = make([]string, 1+len(c.aliases)*boolInt(e.p.tcp))
		hosts := t.vipHosts(e.p, c)
		for i, h := range hosts {
			if v, ok := t.vips.get(h); ok {
				c.vips[i] = v
			} else if full[h] {
				if out == nil {
					out = map[*entry][]string{}
				}
				out[e] = append(out[e], h)
				t.starved[e] = true
			}
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// join and leave keep the per-namespace WorkloadEntry accounting (workloadEntry mode only).
func (t *Translator) join(e *entry) {
	if t.opts.EndpointMode != EndpointModeWorkloadEntry || e.p.fatal != nil {
		return
	}
	ns := t.namespaces[e.p.ns]
	if ns == nil {
		ns = &nsState{members: map[*entry]struct{}{}}
		t.namespaces[e.p.ns] = ns
	}
	ns.members[e] = struct{}{}
	ns.dirty = true
}

func (t *Translator) leave(e *entry) {
	ns := t.namespaces[e.p.ns]
	if ns == nil {
		return
	}
	if _, ok := ns.members[e]; !ok {
		return
	}
	delete(ns.members, e)
	ns.demand -= e.demand
	ns.dirty = true
	if len(ns.members) == 0 {
		delete(t.namespaces, e.p.ns)
	}
}

func (t *Translator) setDemand(e *entry, c *renderCtx) {
	ns := t.namespaces[e.p.ns]
	if ns == nil {
		return
	}
	d := 0
	if c.primary {
		d = len(e.p.endpoints)
	}
	if d != e.demand {
		ns.demand += d - e.demand
		e.demand = d
		ns.dirty = true
	}
	if t.rebuildAll {
		ns.dirty = true
	}
}

// admit applies the cap to each namespace whose demand changed and returns the services whose
// admission changed. Within the cap, everyone is admitted; over it, services are admitted in
// source order while they fit (later, smaller ones may still fit), the rest fall back to inline
// endpoints. The choice depends only on the current services, never on history.
func (t *Translator) admit() []*entry {
	var flipped []*entry
	limit := t.opts.MaxWorkloadEntriesPerNamespace
	for _, ns := range t.namespaces {
		if !ns.dirty {
			continue
		}
		ns.dirty = false
		set := func(e *entry, ok bool) {
			if e.admitted != ok || !e.hasCtx {
				flipped = append(flipped, e)
			}
			e.admitted = ok
		}
		if limit < 0 || ns.demand <= limit {
			for e := range ns.members {
				set(e, true)
			}
			continue
		}
		members := make([]*entry, 0, len(ns.members))
		for e := range ns.members {
			members = append(members, e)
		}
		slices.SortFunc(members, func(a, b *entry) int { return strings.Compare(a.p.src, b.p.src) })
		used := 0
		for _, e := range members {
			ok := used+e.demand <= limit
			if ok {
				used += e.demand
			}
			set(e, ok)
		}
	}
	return flipped
}

// updateIndexes replaces the slots of changed and removed services in the sorted outputs. An
// index is rebuilt (one linear merge) only when one of them had or has slots in it.
func (t *Translator) updateIndexes(changed, removed []*entry) {
	var ses, wes []slot[*istio.Resource]
	var inv []slot[istio.Invalid]
	var warn []slot[istio.Warning]
	var hosts []slot[ServiceHosts]
	var touched [5]bool
	for _, list := range [][]*entry{changed, removed} {
		for _, e := range list {
			for i, n := range e.held {
				touched[i] = touched[i] || n > 0
			}
		}
	}
	for _, e := range changed {
		for _, r := range e.out.ses {
			ses = append(ses, slot[*istio.Resource]{e, e.gen, r})
		}
		for _, r := range e.out.wes {
			wes = append(wes, slot[*istio.Resource]{e, e.gen, r})
		}
		for _, i := range e.out.invalid {
			inv = append(inv, slot[istio.Invalid]{e, e.gen, i})
		}
		for _, w := range e.out.warnings {
			warn = append(warn, slot[istio.Warning]{e, e.gen, w})
		}
		for _, h := range e.out.hosts {
			hosts = append(hosts, slot[ServiceHosts]{e, e.gen, h})
		}
		e.held = [5]int{len(e.out.ses), len(e.out.wes), len(e.out.invalid), len(e.out.warnings), len(e.out.hosts)}
	}
	t.ses.update(ses, touched[0])
	t.wes.update(wes, touched[1])
	t.invalid.update(inv, touched[2])
	t.warnings.update(warn, touched[3])
	t.hosts.update(hosts, touched[4])
}
