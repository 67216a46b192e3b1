package translate

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"slices"
)

// vipRange is the usable part of the VIP CIDR: addresses base+1 .. base+size (the network address
// and, for IPv4, the last address are skipped; they confuse some tools).
type vipRange struct {
	base netip.Addr
	size uint64
}

func parseVIPRange(cidr string) (vipRange, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return vipRange{}, fmt.Errorf("%q is not a CIDR: %w", cidr, err)
	}
	p = p.Masked()
	for _, istio := range istioAutoAllocation {
		if p.Overlaps(istio) {
			return vipRange{}, fmt.Errorf("%s overlaps %s, which Istio allocates ServiceEntry addresses from itself", p, istio)
		}
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits > 62 {
		hostBits = 62 // plenty; keeps the arithmetic in uint64
	}
	size := uint64(1)<<hostBits - 1 // skip the network address
	if p.Addr().Is4() {
		size-- // and the broadcast address
	}
	if hostBits < 2 || size < 2 {
		return vipRange{}, fmt.Errorf("%s is too small: it needs room for at least two addresses", p)
	}
	return vipRange{base: p.Addr(), size: size}, nil
}

// addr returns the address at offset 1..size.
func (r vipRange) addr(offset uint64) netip.Addr {
	b := r.base.AsSlice()
	n := new(big.Int).SetBytes(b)
	n.Add(n, new(big.Int).SetUint64(offset))
	out := n.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a
}

// vipAllocator gives hosts VIPs. A host's first candidate is FNV-1a(host) in the range; on a
// collision it probes onward (+1, wrapping). Hosts that need a VIP in the same Translate call are
// allocated in sorted order, so the result depends on the set of hosts, not on input order; a host
// keeps its VIP for as long as it has one, so a newcomer never moves it. The one case where two
// processes can disagree is two hosts whose candidates collide and that arrived in different
// calls in one process and together in the other (a restart): the range is large by default to
// keep that rare.
type vipAllocator struct {
	r      vipRange
	byHost map[string]netip.Addr
	used   map[netip.Addr]string
}

func newVIPAllocator(r vipRange) *vipAllocator {
	return &vipAllocator{r: r, byHost: map[string]netip.Addr{}, used: map[netip.Addr]string{}}
}

func (a *vipAllocator) get(host string) (string, bool) {
	v, ok := a.byHost[host]
	if !ok {
		return "", false
	}
	return v.String(), true
}

func (a *vipAllocator) release(host string) {
	if v, ok := a.byHost[host]; ok {
		delete(a.byHost, host)
		delete(a.used, v)
	}
}

// allocate gives each host without a VIP one, in sorted order. Hosts left over when the range is
// full are returned.
func (a *vipAllocator) allocate(hosts []string) (full []string) {
	slices.Sort(hosts)
	for _, h := range hosts {
		if _, ok := a.byHost[h]; ok {
			continue
		}
		if uint64(len(a.used)) >= a.r.size {
			full = append(full, h)
			continue
		}
		f := fnv.New64a()
		f.Write([]byte(h))
		start := binary.BigEndian.Uint64(f.Sum(nil)) % a.r.size
		for i := uint64(0); ; i++ {
			v := a.r.addr((start+i)%a.r.size + 1)
			if _, taken := a.used[v]; !taken {
				a.byHost[h] = v
				a.used[v] = h
				break
			}
		}
	}
	return full
}
