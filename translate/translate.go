package translate

import (
	"fmt"
	"sync/atomic"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// Translator translates services to Istio resources. Translate must be called serially; Host may
// be called concurrently with it and with itself.
type Translator struct {
	opts     Options
	regs     map[string]*regConfig
	fallback *regConfig // names services of unconfigured registries for Host
	policy   *labelPolicy
	// relabel holds the label keys whose fate changed since the last call (SetRoutedLabels):
	// services carrying one are prepared again.
	relabel map[string]bool
	// dropCounts: endpoint label key -> endpoints of the current services it was dropped from.
	dropCounts map[string]int
	statsDirty bool
	stats      atomic.Pointer[LabelStats]
	tlsMode    string // value of LabelTLSMode, "" for none
	vips       *vipAllocator

	entries    map[*registry.Service]*entry
	claims     map[string][]*entry // host key -> services claiming it, as primary host or alias
	namespaces map[string]*nsState // workloadEntry mode only
	starved    map[*entry]bool     // services that wanted a VIP and got none: the range was full
	aliasMemo  map[string]*entry   // aliasOwner results within one call
	call       uint64

	ses, wes *sortedIndex[*istio.Resource]
	invalid  *sortedIndex[istio.Invalid]
	warnings *sortedIndex[istio.Warning]
	hosts    *sortedIndex[ServiceHosts]
	last     *Output

	// inheritedVIPs: the VIP table came from a predecessor (Successor) and has not been pruned.
	inheritedVIPs bool

	// rebuildAll makes every call recompute and re-render everything, keeping only the VIP table:
	// the reference the incremental path is tested against.
	rebuildAll bool
}

// entry is one service of the current input and its cached output.
type entry struct {
	p    *prepared
	seen uint64
	// gen changes whenever the entry's output is replaced or removed; index slots carrying an
	// older gen are stale.
	gen    uint64
	dead   bool
	hasCtx bool
	ctx    renderCtx
	out    rendered
	// workloadEntry mode: WorkloadEntries wanted, and whether the namespace cap admits them.
	demand   int
	admitted bool
	queued   bool // scratch: in this call's recompute list
	// held counts the entry's slots in the ses, wes, invalid, warnings and hosts indexes.
	held [5]int
}

type nsState struct {
	members map[*entry]struct{}
	demand  int
	dirty   bool
}

// New validates the options (after WithDefaults) and returns a Translator.
func New(opts Options) (*Translator, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("translate options: %w", err)
	}
	r, _ := parseVIPRange(opts.VIPCIDR)
	t := &Translator{
		opts:       opts,
		regs:       map[string]*regConfig{},
		policy:     newPolicy(opts.Labels, opts.DropLabels),
		dropCounts: map[string]int{},
		statsDirty: true,
		vips:       newVIPAllocator(r),
		entries:    map[*registry.Service]*entry{},
		claims:     map[string][]*entry{},
		namespaces: map[string]*nsState{},
		starved:    map[*entry]bool{},
		aliasMemo:  map[string]*entry{},
		ses:        newSortedIndex(compareResource),
		wes:        newSortedIndex(compareResource),
		invalid:    newSortedIndex(compareInvalid),
		warnings:   newSortedIndex(compareWarning),
		hosts:      newSortedIndex(compareServiceHosts),
	}
	if opts.WorkloadTLSMode != TLSModeNone {
		t.tlsMode = opts.WorkloadTLSMode
	}
	for i, ro := range opts.Registries {
		c, err := newRegConfig(ro)
		if err != nil {
			return nil, fmt.Errorf("translate options: registries[%d].hosts: %w", i, err)
		}
		t.regs[ro.Name] = c
	}
	fb, err := newRegConfig(RegistryOptions{Hosts: DefaultHostTemplates()})
	if err != nil {
		return nil, fmt.Errorf("default host templates: %w", err)
	}
	t.fallback = fb
	return t, nil
}

// Host returns the service's primary host: the identity the merge layer uses for "the same service
// in several registries". For a service of an unconfigured registry it returns the host generic
// defaults would give it (Translate reports such a service invalid). When the template yields no
// valid host it returns "<registry>/<service key>", which contains '/' and so is never a host: such
// services stay apart, and Translate reports why they are not emitted.
func (t *Translator) Host(s *registry.Service) string {
	reg := t.regs[s.Registry]
	if reg == nil {
		reg = t.fallback
	}
	h, err := t.host(reg, s.Kind, s.Name, s.Group, s.Namespace, s.Version, s.Registry)
	if err != nil {
		return sourceOf(s)
	}
	return h
}

// Translate returns the resources for the full list of services. Services are identified by
// pointer: a pointer seen in the previous call is assumed unchanged.
func (t *Translator) Translate(services []*registry.Service) *Output {
	t.call++
	var queue, removed []*entry
	enqueue := func(e *entry) {
		if !e.queued && !e.dead {
			e.queued = true
			queue = append(queue, e)
		}
	}
	dirtyHosts := map[string]bool{}
	retire := func(e *entry) {
		t.unclaim(e, dirtyHosts)
		t.leave(e)
		t.countDrops(e.p, -1)
		e.dead = true
		e.gen++
		removed = append(removed, e)
	}
	relabel := t.relabel
	t.relabel = nil

	for _, s := range services {
		if s == nil {
			continue
		}
		e := t.entries[s]
		if e != nil && len(relabel) > 0 && carries(s, relabel) {
			// The same service, but a label key it carries is now kept or dropped: it is
			// prepared again, its previous output lending what did not change.
			retire(e)
			e = nil
		}
		if e == nil {
			e = &entry{p: t.prepare(s)}
			t.entries[s] = e
			t.claim(e, dirtyHosts)
			t.join(e)
			t.countDrops(e.p, 1)
			enqueue(e)
		}
		e.seen = t.call
	}
	for s, e := range t.entries {
		if e.seen != t.call {
			delete(t.entries, s)
			retire(e)
		}
	}
	if t.statsDirty || len(relabel) > 0 {
		t.statsDirty = false
		t.publishStats()
	}
	if t.rebuildAll {
		for _, e := range t.entries {
			enqueue(e)
		}
	}
	// Services left without a VIP try again whenever anything changed: a VIP may have been freed.
	if len(queue) > 0 || len(removed) > 0 {
		for e := range t.starved {
			enqueue(e)
		}
	}
	for h := range dirtyHosts {
		for _, e := range t.claims[h] {
			enqueue(e)
		}
	}
	// A service that gains or loses its primary host gains or loses its aliases too, which
	// changes who owns them.
	for i := 0; i < len(queue); i++ {
		e := queue[i]
		if e.p.fatal != nil {
			continue
		}
		if !e.hasCtx || t.ownsPrimary(e) != e.ctx.primary {
			for _, k := range e.p.aliasKeys {
				for _, c := range t.claims[k] {
					enqueue(c)
				}
			}
		}
	}

	// Host ownership, then the WorkloadEntry cap (which depends on it), then VIPs.
	clear(t.aliasMemo)
	next := make(map[*entry]*renderCtx, len(queue))
	for _, e := range queue {
		next[e] = t.hostContext(e)
	}
	if t.opts.EndpointMode == EndpointModeWorkloadEntry {
		for _, e := range queue {
			t.setDemand(e, next[e])
		}
		for _, e := range t.admit() {
			if !e.queued {
				enqueue(e)
				next[e] = t.hostContext(e)
			}
		}
		for _, e := range queue {
			c := next[e]
			c.we = e.admitted && c.primary
			c.capped = !e.admitted && c.primary
		}
	}
	vipFull := t.assignVIPs(queue, removed, next)

	// Render what changed and collect the new index slots. A changed service arrives as a new
	// pointer; its previous output, found by source, still lends the resources that did not change.
	var predecessor map[string]*entry
	if len(removed) > 0 {
		predecessor = make(map[string]*entry, len(removed))
		for _, e := range removed {
			predecessor[e.p.src] = e
		}
	}
	var changed []*entry
	for _, e := range queue {
		e.queued = false
		c := next[e]
		if e.hasCtx && c.equal(&e.ctx) && !t.rebuildAll {
			continue
		}
		old := e.out
		if !e.hasCtx {
			if p := predecessor[e.p.src]; p != nil {
				old = p.out
			}
		}
		e.out = t.render(e.p, c, &old, vipFull[e])
		e.ctx, e.hasCtx = *c, true
		e.gen++
		changed = append(changed, e)
	}
	if len(changed) == 0 && len(removed) == 0 && t.last != nil {
		return t.last
	}
	t.updateIndexes(changed, removed)
	out := &Output{
		Resources: map[string][]*istio.Resource{
			istio.CollectionServiceEntry:  t.ses.items,
			istio.CollectionWorkloadEntry: t.wes.items,
		},
		Invalid:  t.invalid.items,
		Warnings: t.warnings.items,
		Hosts:    t.hosts.items,
	}
	t.last = out
	return out
}
