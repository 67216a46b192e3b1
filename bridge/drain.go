package bridge

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// DefaultDrainGrace is how long endpoints removed in the same push as a routing change of their
// service are still served: long enough for Istiod's debounce (100 ms by default) and the full
// push that carries the route change to its proxies and proxyless clients.
const DefaultDrainGrace = time.Second

// The staged push (docs/rules.md, "Staged push"). Istiod applies a ServiceEntry's endpoint change
// at once (incremental EDS) and a VirtualService/DestinationRule change after its debounce (full
// push). When one push both reroutes a service and removes endpoints of it — the last instance of
// a routed subset leaves, the route falls back to the baseline — serving both at once leaves a
// moment where clients still route to the subset whose endpoints are gone, and proxyless gRPC
// fails those RPCs ("weighted-target: no targets to pick from"). So the bridge serves the new
// routing resources at once but keeps the removed endpoints (its ServiceEntry's endpoints inline,
// its WorkloadEntries in workloadEntry mode) for the drain grace, then serves them removed.
//
// What is held: only endpoints of a service whose VirtualService or DestinationRule changed in
// that push (the service identified by the resources' Source), only while that service still has
// a routing resource and a ServiceEntry, each endpoint at most the grace after the push that
// removed it, and never one the producers serve again meanwhile. Later pushes rebuild the served
// resources from their own output plus what is still held, so a later snapshot supersedes a
// pending second stage (nothing stale comes back). Endpoints removed without a routing change go
// at once.

// drainState is the bridge's held endpoints; guarded by pushMu.
type drainState struct {
	grace time.Duration
	holds map[string]*hold // by service source
	timer *time.Timer
	// stopped is set when Run returns: no timer is armed after it.
	stopped bool
}

// hold is what one service has held.
type hold struct {
	source string
	// routing names the service's VirtualServices/DestinationRules served when it was staged: the
	// hold ends when none of them is served any more (the rules or the service went).
	routing []resKey
	ses     map[resKey]*seHold
	wes     map[resKey]*weHold
}

type resKey struct{ coll, ns, name string }

// seHold is a ServiceEntry served with removed endpoints kept.
type seHold struct {
	kept []keptEndpoint
	// base is the producers' ServiceEntry the served one was made of; served is what is served:
	// the previous resource itself (same pointer, no change for Istiod) when the push only removed
	// endpoints, else base plus the kept endpoints.
	base, served *istio.Resource
}

type keptEndpoint struct {
	ep    *networking.WorkloadEntry
	key   string
	until time.Time
}

// weHold is a WorkloadEntry served after the producers stopped emitting it.
type weHold struct {
	r     *istio.Resource
	until time.Time
}

// Held is one endpoint served past its removal, for /debug/rules.
type Held struct {
	Source     string    `json:"source"`
	Kind       string    `json:"kind"` // ServiceEntry (an inline endpoint) or WorkloadEntry
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	Address    string    `json:"address"`
	Until      time.Time `json:"until"`
	Collection string    `json:"-"`
}

// applyDrain returns what to serve for the producers' output target at now: target itself, or a
// copy whose ServiceEntry/WorkloadEntry collections carry the held endpoints. staged reports
// whether this push began holding endpoints. Callers hold pushMu.
func (b *Bridge) applyDrain(target map[string][]*istio.Resource, now time.Time) (served map[string][]*istio.Resource, staged bool) {
	d := &b.drain
	if d.grace <= 0 {
		clear(d.holds)
		return target, false
	}
	if trig := b.routingChanged(target); len(trig) > 0 {
		staged = b.stage(trig, target, now)
	}
	for src, h := range d.holds {
		if !h.alive(target) {
			delete(d.holds, src)
			continue
		}
		h.refresh(target, now)
		if len(h.ses) == 0 && len(h.wes) == 0 {
			delete(d.holds, src)
		}
	}
	if len(d.holds) == 0 {
		return target, staged
	}
	return d.overlay(target), staged
}

// routingChanged returns the sources of the VirtualServices and DestinationRules target serves
// anew (changed or added) since the last push, with their keys. It walks only routing collections
// that are not the very slice served last time.
func (b *Bridge) routingChanged(target map[string][]*istio.Resource) map[string][]resKey {
	var trig map[string][]resKey
	for _, coll := range []string{istio.CollectionVirtualService, istio.CollectionDestinationRule} {
		prev, next := b.served[coll].in, target[coll]
		if sameSlice(prev, next) {
			continue
		}
		walk(prev, next, func(a, z *istio.Resource) {
			if z == nil || a == z || z.Source == "" {
				return
			}
			if trig == nil {
				trig = make(map[string][]resKey)
			}
			trig[z.Source] = append(trig[z.Source], resKey{coll, z.Namespace, z.Name})
		})
	}
	return trig
}

// stage holds the endpoints this push removes from the services in trig: ServiceEntry endpoints
// gone from a ServiceEntry still served, and WorkloadEntries gone. It compares with what was
// served last (which may itself carry held endpoints: those keep their deadline).
func (b *Bridge) stage(trig map[string][]resKey, target map[string][]*istio.Resource, now time.Time) bool {
	d := &b.drain
	staged := false
	holdOf := func(src string) *hold {
		h := d.holds[src]
		if h == nil {
			h = &hold{source: src, ses: map[resKey]*seHold{}, wes: map[resKey]*weHold{}}
			if d.holds == nil {
				d.holds = map[string]*hold{}
			}
			d.holds[src] = h
		}
		h.routing = trig[src]
		return h
	}
	if prev, next := b.served[istio.CollectionServiceEntry].in, target[istio.CollectionServiceEntry]; !sameSlice(prev, next) {
		walk(prev, next, func(a, z *istio.Resource) {
			if a == nil || z == nil || a == z || trig[z.Source] == nil || a.Source != z.Source {
				return
			}
			old, err1 := decodeSE(a)
			cur, err2 := decodeSE(z)
			if err1 != nil || err2 != nil {
				b.log.Warn("staged push: ServiceEntry not decodable, its endpoints go at once", "resource", z.Namespace+"/"+z.Name, "error", cmp.Or(err1, err2))
				return
			}
			present := endpointKeys(cur)
			k := resKey{istio.CollectionServiceEntry, z.Namespace, z.Name}
			var prevKept map[string]time.Time
			if h := d.holds[z.Source]; h != nil && h.ses[k] != nil {
				prevKept = make(map[string]time.Time, len(h.ses[k].kept))
				for _, e := range h.ses[k].kept {
					prevKept[e.key] = e.until
				}
			}
			var kept []keptEndpoint
			fresh := false
			for _, ep := range old.GetEndpoints() {
				key := endpointKey(ep)
				if present[key] {
					continue
				}
				until, ok := prevKept[key]
				if !ok {
					until, fresh = now.Add(d.grace), true
				}
				kept = append(kept, keptEndpoint{ep: ep, key: key, until: until})
			}
			if len(kept) == 0 {
				return
			}
			sh := &seHold{kept: kept, base: z}
			if onlyRemoved(old, cur) {
				sh.served = a // nothing else changed: the very resource served before
			}
			holdOf(z.Source).ses[k] = sh
			staged = staged || fresh
		})
	}
	if prev, next := b.served[istio.CollectionWorkloadEntry].in, target[istio.CollectionWorkloadEntry]; !sameSlice(prev, next) {
		walk(prev, next, func(a, z *istio.Resource) {
			if z != nil || a == nil {
				return
			}
			src, _, _ := strings.Cut(a.Source, "#")
			if trig[src] == nil {
				return
			}
			k := resKey{istio.CollectionWorkloadEntry, a.Namespace, a.Name}
			if h := d.holds[src]; h != nil && h.wes[k] != nil {
				holdOf(src).wes[k] = h.wes[k] // held already: keeps its deadline
				return
			}
			holdOf(src).wes[k] = &weHold{r: a, until: now.Add(d.grace)}
			staged = true
		})
	}
	return staged
}

// alive reports whether the service still has one of its routing resources served and so may
// keep holding: a service whose rules or ServiceEntry went has nothing to drain for.
func (h *hold) alive(target map[string][]*istio.Resource) bool {
	for _, k := range h.routing {
		if r := find(target[k.coll], k.ns, k.name); r != nil && r.Source == h.source {
			return true
		}
	}
	return false
}

// refresh drops expired endpoints and those the producers serve again, and rebuilds a held
// ServiceEntry whose producers' version changed.
func (h *hold) refresh(target map[string][]*istio.Resource, now time.Time) {
	for k, sh := range h.ses {
		z := find(target[k.coll], k.ns, k.name)
		if z == nil || z.Source != h.source {
			delete(h.ses, k)
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(sh.kept), func(e keptEndpoint) bool { return !e.until.After(now) })
		if z != sh.base {
			cur, err := decodeSE(z)
			if err != nil {
				delete(h.ses, k)
				continue
			}
			present := endpointKeys(cur)
			kept = slices.DeleteFunc(kept, func(e keptEndpoint) bool { return present[e.key] })
		}
		switch {
		case len(kept) == 0:
			delete(h.ses, k)
		case z == sh.base && len(kept) == len(sh.kept) && sh.served != nil:
			// unchanged: keep serving the same resource
		default:
			r, err := withEndpoints(z, kept)
			if err != nil {
				delete(h.ses, k)
				continue
			}
			h.ses[k] = &seHold{kept: kept, base: z, served: r}
		}
	}
	for k, wh := range h.wes {
		if !wh.until.After(now) || find(target[k.coll], k.ns, k.name) != nil {
			delete(h.wes, k)
		}
	}
}

// overlay returns target with the held ServiceEntries in place of the producers' ones and the
// held WorkloadEntries added. Only the collections with something held are copied.
func (d *drainState) overlay(target map[string][]*istio.Resource) map[string][]*istio.Resource {
	out := maps.Clone(target)
	var ses map[resKey]*istio.Resource
	var wes []*istio.Resource
	for _, h := range d.holds {
		for k, sh := range h.ses {
			if ses == nil {
				ses = map[resKey]*istio.Resource{}
			}
			ses[k] = sh.served
		}
		for _, wh := range h.wes {
			wes = append(wes, wh.r)
		}
	}
	if len(ses) > 0 {
		in := target[istio.CollectionServiceEntry]
		s := slices.Clone(in)
		for k, r := range ses {
			if i, ok := index(in, k.ns, k.name); ok {
				s[i] = r
			}
		}
		out[istio.CollectionServiceEntry] = s
	}
	if len(wes) > 0 {
		slices.SortFunc(wes, byName)
		in := target[istio.CollectionWorkloadEntry]
		s := make([]*istio.Resource, 0, len(in)+len(wes))
		i := 0
		for _, r := range in {
			for i < len(wes) && byName(wes[i], r) < 0 {
				s = append(s, wes[i])
				i++
			}
			s = append(s, r)
		}
		out[istio.CollectionWorkloadEntry] = append(s, wes[i:]...)
	}
	return out
}

// schedule arms the timer for the earliest deadline; fire serves the last target again.
func (d *drainState) schedule(now time.Time, fire func()) {
	var next time.Time
	for _, h := range d.holds {
		for _, sh := range h.ses {
			for _, e := range sh.kept {
				if next.IsZero() || e.until.Before(next) {
					next = e.until
				}
			}
		}
		for _, wh := range h.wes {
			if next.IsZero() || wh.until.Before(next) {
				next = wh.until
			}
		}
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if !next.IsZero() && !d.stopped {
		d.timer = time.AfterFunc(max(next.Sub(now), 0), fire)
	}
}

// count is how many endpoints are held.
func (d *drainState) count() int {
	n := 0
	for _, h := range d.holds {
		for _, sh := range h.ses {
			n += len(sh.kept)
		}
		n += len(h.wes)
	}
	return n
}

// held lists the held endpoints, sorted.
func (d *drainState) held() []Held {
	var out []Held
	for _, h := range d.holds {
		for k, sh := range h.ses {
			for _, e := range sh.kept {
				out = append(out, Held{Source: h.source, Kind: collectionKind(k.coll), Collection: k.coll, Namespace: k.ns, Name: k.name, Address: e.ep.GetAddress(), Until: e.until})
			}
		}
		for k, wh := range h.wes {
			addr := ""
			if we, err := wh.r.DecodeSpec(); err == nil {
				addr = we.(*networking.WorkloadEntry).GetAddress()
			}
			out = append(out, Held{Source: h.source, Kind: collectionKind(k.coll), Collection: k.coll, Namespace: k.ns, Name: k.name, Address: addr, Until: wh.until})
		}
	}
	slices.SortFunc(out, func(a, b Held) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Address, b.Address))
	})
	return out
}

// Held returns the endpoints currently served past their removal by a staged push.
func (b *Bridge) Held() []Held {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	return b.drain.held()
}

// walk merges two slices sorted by namespace/name, calling f with the resource of each name in
// each (nil where absent). It compares strings only where pointers differ.
func walk(a, z []*istio.Resource, f func(a, z *istio.Resource)) {
	i, j := 0, 0
	for i < len(a) || j < len(z) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(z):
			c = -1
		case a[i] == z[j]:
			c = 0
		default:
			c = byName(a[i], z[j])
		}
		switch {
		case c < 0:
			f(a[i], nil)
			i++
		case c > 0:
			f(nil, z[j])
			j++
		default:
			f(a[i], z[j])
			i, j = i+1, j+1
		}
	}
}

func byName(a, b *istio.Resource) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

func index(rs []*istio.Resource, ns, name string) (int, bool) {
	return slices.BinarySearchFunc(rs, resKey{ns: ns, name: name}, func(r *istio.Resource, k resKey) int {
		return cmp.Or(cmp.Compare(r.Namespace, k.ns), cmp.Compare(r.Name, k.name))
	})
}

func find(rs []*istio.Resource, ns, name string) *istio.Resource {
	if i, ok := index(rs, ns, name); ok {
		return rs[i]
	}
	return nil
}

func decodeSE(r *istio.Resource) (*networking.ServiceEntry, error) {
	se := &networking.ServiceEntry{}
	if err := proto.Unmarshal(r.Body.GetValue(), se); err != nil {
		return nil, fmt.Errorf("decoding ServiceEntry %s/%s: %w", r.Namespace, r.Name, err)
	}
	return se, nil
}

// endpointKey identifies an endpoint as a client connects to it: its address and ports. The same
// address and ports with other labels is the same target, so it is not kept beside the new one.
func endpointKey(ep *networking.WorkloadEntry) string {
	var sb strings.Builder
	sb.WriteString(ep.GetAddress())
	for _, p := range slices.Sorted(maps.Keys(ep.GetPorts())) {
		fmt.Fprintf(&sb, "|%s=%d", p, ep.GetPorts()[p])
	}
	return sb.String()
}

func endpointKeys(se *networking.ServiceEntry) map[string]bool {
	m := make(map[string]bool, len(se.GetEndpoints()))
	for _, ep := range se.GetEndpoints() {
		m[endpointKey(ep)] = true
	}
	return m
}

// onlyRemoved reports whether cur is old with some endpoints left out and nothing else changed,
// so the previous resource can be served as it is.
func onlyRemoved(old, cur *networking.ServiceEntry) bool {
	o, c := proto.Clone(old).(*networking.ServiceEntry), proto.Clone(cur).(*networking.ServiceEntry)
	o.Endpoints, c.Endpoints = nil, nil
	if !proto.Equal(o, c) {
		return false
	}
	j := 0
	for _, ep := range cur.GetEndpoints() {
		for j < len(old.GetEndpoints()) && !proto.Equal(old.GetEndpoints()[j], ep) {
			j++
		}
		if j == len(old.GetEndpoints()) {
			return false
		}
		j++
	}
	return true
}

// withEndpoints returns z with the kept endpoints appended, as a new resource (own body and
// content-hash version).
func withEndpoints(z *istio.Resource, kept []keptEndpoint) (*istio.Resource, error) {
	se, err := decodeSE(z)
	if err != nil {
		return nil, err
	}
	for _, e := range kept {
		se.Endpoints = append(se.Endpoints, e.ep)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(se)
	if err != nil {
		return nil, fmt.Errorf("marshalling ServiceEntry %s/%s with held endpoints: %w", z.Namespace, z.Name, err)
	}
	r := *z
	r.Body = &anypb.Any{TypeUrl: z.Body.GetTypeUrl(), Value: body}
	r.Version = istio.Version(body, z.Labels, z.Annotations)
	return &r, nil
}
