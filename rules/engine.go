package rules

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Sections of a rule, in the order they are reported.
const (
	SectionSubsets    = "subsets"
	SectionCanary     = "canary"
	SectionTagRouting = "tagRouting"
	SectionLanes      = "lanes"
	SectionLocality   = "locality"
	SectionResilience = "resilience"
	SectionConditions = "conditions"
)

var sections = []string{SectionSubsets, SectionCanary, SectionTagRouting, SectionLanes, SectionLocality, SectionResilience, SectionConditions}

func (c *compiled) has(section string) bool {
	s := &c.Spec
	switch section {
	case SectionSubsets:
		return s.Subsets != nil
	case SectionCanary:
		return s.Canary != nil
	case SectionTagRouting:
		return s.TagRouting != nil
	case SectionLanes:
		return s.Lanes != nil
	case SectionLocality:
		return s.Locality != nil
	case SectionResilience:
		return s.Resilience != nil
	case SectionConditions:
		return s.Conditions != nil
	}
	return false
}

// Options configure an Engine.
type Options struct {
	// Host returns a service's primary Istio host, as translate names it
	// (translate.Translator.Host). Selectors match it and the hosts of the service's aliases.
	Host func(*registry.Service) string
	// Which instances are endpoints, as translate decides it (translate.Options).
	IncludeUnhealthy, IncludeDisabled, IncludeZeroWeight bool
}

// Conflict is two rules selecting one service with the same section: the winner's applies.
type Conflict struct {
	Service string `json:"service"`
	Section string `json:"section"`
	Winner  string `json:"winner"`
	Loser   string `json:"loser"`
	// Why the winner wins: "priority 10 > 0", "specificity 9 > 2", "name a < b".
	Why string `json:"why"`
}

// Engine evaluates rules against services. It is not safe for concurrent use: the bridge calls
// its producer serially, and SetRules is called between pushes by the producer under its lock.
type Engine struct {
	opts  Options
	rules []*compiled // by precedence
	gen   int         // bumped by SetRules: every service is re-evaluated
	svcs  map[string]*entry
	byPtr map[*registry.Service]*entry // the same entries by snapshot pointer: no source string per push
	out   outputs
	// keys is LabelKeys' result for rules generation keysGen.
	keys    []string
	keysGen int
}

// entry is one service's cached state: what it matched and the policy made of it.
type entry struct {
	src     string
	hostIdx int               // its index in translate's Output.Hosts last time
	in      *registry.Service // the snapshot's service this was computed from
	gen     int
	hosts   []string // primary host and alias hosts (selection)
	win     map[string]*compiled
	lost    []Conflict
	rules   []*compiled // every rule selecting it
	keys    []string    // label keys marked on instances lacking them (Prepare)
	marked  *registry.Service

	sh     *translate.ServiceHosts // what the policy was built for
	dirty  bool                    // the service or the rules changed since the policy was built
	policy *policy
	seen   int                  // pass number of the last Produce/Prepare that saw it
	sticky map[string]subsetDef // subsets once generated, kept so a returning one finds its cluster
	stick  int                  // order of the next sticky subset
}

// outputs is the last Produce's result, kept so an unchanged push returns the same slices.
type outputs struct {
	pass      int
	dr, vs    []*istio.Resource
	invalid   []istio.Invalid
	warnings  []istio.Warning
	conflicts []Conflict
}

// New returns an engine with no rules.
func New(opts Options) *Engine {
	return &Engine{opts: opts, svcs: map[string]*entry{}, byPtr: map[*registry.Service]*entry{}}
}

// SetRules replaces the rules. Every rule must have come through ParseFile or Config.Validate;
// one that does not compile now is returned as an error and nothing changes. Names must be
// unique across all sources.
func (e *Engine) SetRules(rs []Rule) error {
	out := make([]*compiled, 0, len(rs))
	names := map[string]string{}
	for _, r := range rs {
		c, ps := compile(r)
		if len(ps) > 0 {
			return fmt.Errorf("rule %s (%s): %s: %s", r.Name, r.Origin, ps[0].path, ps[0].msg)
		}
		if prev, dup := names[r.Name]; dup {
			return fmt.Errorf("rule %s is declared twice: %s and %s", r.Name, prev, r.Origin)
		}
		names[r.Name] = r.Origin
		out = append(out, c)
	}
	slices.SortFunc(out, precedes)
	if slices.EqualFunc(out, e.rules, func(a, b *compiled) bool { return reflect.DeepEqual(a.Rule, b.Rule) }) {
		return nil // the same rules (a configuration reload that left them alone): nothing to redo
	}
	e.rules = out
	e.gen++
	return nil
}

// Rules returns the rules in precedence order.
func (e *Engine) Rules() []Rule {
	out := make([]Rule, len(e.rules))
	for i, c := range e.rules {
		out[i] = c.Rule
	}
	return out
}

func source(s *registry.Service) string {
	return strings.ToValidUTF8(s.Registry+"/"+s.Key().String(), "\uFFFD")
}

// hostsOf is what selectors match: the primary host and the host of each alias.
func (e *Engine) hostsOf(s *registry.Service) []string {
	if e.opts.Host == nil {
		return nil
	}
	hosts := []string{e.opts.Host(s)}
	for _, a := range s.Aliases {
		hosts = append(hosts, e.opts.Host(&registry.Service{Registry: s.Registry, Kind: registry.KindDubboInterface, Name: a}))
	}
	return hosts
}

// lookup returns the service's entry and its source, the fast way for an unchanged service.
func (e *Engine) lookup(s *registry.Service) (*entry, string) {
	if en := e.byPtr[s]; en != nil && en.in == s && en.gen == e.gen {
		return en, en.src
	}
	src := source(s)
	en := e.entryFor(s, src)
	return en, src
}

// entryFor returns the service's entry, re-matching it when the service or the rules changed.
func (e *Engine) entryFor(s *registry.Service, src string) *entry {
	en := e.svcs[src]
	if en == nil {
		en = &entry{}
		e.svcs[src] = en
	}
	if en.in == s && en.gen == e.gen {
		return en
	}
	if en.gen != e.gen {
		en.sticky, en.stick = nil, 0 // the rules changed: subsets are made afresh
	}
	if en.in != nil && e.byPtr[en.in] == en {
		delete(e.byPtr, en.in)
	}
	e.byPtr[s], en.src = en, src
	en.in, en.gen, en.dirty, en.marked = s, e.gen, true, nil
	en.hosts = e.hostsOf(s)
	en.win, en.lost, en.rules = map[string]*compiled{}, nil, nil
	for _, c := range e.rules {
		if !c.selects(s, en.hosts) {
			continue
		}
		en.rules = append(en.rules, c)
		for _, sec := range sections {
			if !c.has(sec) {
				continue
			}
			if w := en.win[sec]; w != nil {
				en.lost = append(en.lost, Conflict{Service: src, Section: sec, Winner: w.Name, Loser: c.Name, Why: why(w, c)})
				continue
			}
			en.win[sec] = c
		}
	}
	en.keys = markKeys(en.win)
	return en
}

func why(w, l *compiled) string {
	switch {
	case (w.Governance == nil) != (l.Governance == nil):
		return "a declared rule wins over a registry governance rule"
	case w.Priority != l.Priority:
		return fmt.Sprintf("priority %d > %d", w.Priority, l.Priority)
	case w.specificity != l.specificity:
		return fmt.Sprintf("specificity %d > %d", w.specificity, l.specificity)
	}
	return fmt.Sprintf("name %s < %s", w.Name, l.Name)
}

// markKeys are the label keys whose absence a subset must select: Istio subsets select labels
// that are present, so instances lacking one get it with the empty value (Prepare).
func markKeys(win map[string]*compiled) []string {
	set := map[string]bool{}
	if c := win[SectionSubsets]; c != nil {
		for _, k := range c.Subsets.Labels {
			set[k] = true
		}
	}
	if c := win[SectionTagRouting]; c != nil {
		set[c.TagRouting.Label] = true
	}
	if c := win[SectionLanes]; c != nil {
		set[c.Lanes.Label] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// Prepare returns the services with every instance that lacks a label key some winning rule
// routes by given that key with the empty value ("" = "has no tag", "in no lane"), so that the
// base and baseline subsets can select them. Unchanged services keep their pointers; the input is
// never modified. The bridge runs it before translate (bridge.TranslateWith).
func (e *Engine) Prepare(services []*registry.Service) []*registry.Service {
	if len(e.rules) == 0 {
		return services
	}
	var out []*registry.Service
	for i, s := range services {
		en, _ := e.lookup(s)
		if en.marked == nil {
			en.marked = e.markOf(en)
		}
		if en.marked != s && out == nil {
			out = slices.Clone(services[:i:i])
		}
		if out != nil {
			out = append(out, en.marked)
		}
	}
	if out == nil {
		return services
	}
	return out
}

// labelAlias is the other spelling of a routed label key ("" for none): an instance lacking the key but carrying
// its alias is given the key with the alias's value. The ZooKeeper, Nacos and Consul adapters
// register Dubbo's tag parameter dubbo.tag as the label dubbo-tag (registry/dubbo.Labels), while
// the file registry passes labels as written (dubbo.tag in its examples): the tag rule's default
// label dubbo.tag must see the tags of both, or a Dubbo registry's tagged instances would be
// marked untagged and reached by untagged requests.
func labelAlias(key string) string {
	if key == DefaultTagLabel {
		return "dubbo-tag"
	}
	return ""
}

// mark gives every instance of s lacking one of keys that key: its alias's value, else "".
func mark(s *registry.Service, keys []string) *registry.Service {
	if len(keys) == 0 {
		return s
	}
	var c *registry.Service
	var cloned []bool
	for i := range s.Instances {
		in := &s.Instances[i]
		for _, k := range keys {
			if _, ok := in.Labels[k]; ok {
				continue
			}
			v := in.Labels[labelAlias(k)] // "" when there is no alias, or the instance lacks it too
			if c == nil {
				cp := *s
				cp.Instances = slices.Clone(s.Instances)
				c, cloned = &cp, make([]bool, len(s.Instances))
			}
			ci := &c.Instances[i]
			if !cloned[i] {
				ci.Labels = maps.Clone(in.Labels)
				if ci.Labels == nil {
					ci.Labels = map[string]string{}
				}
				cloned[i] = true
			}
			ci.Labels[k] = v
		}
	}
	if c == nil {
		return s
	}
	return c
}

// Result is one evaluation: resources by collection, and what the debug page and metrics show.
type Result struct {
	Resources map[string][]*istio.Resource
	Invalid   []istio.Invalid
	Warnings  []istio.Warning
	Conflicts []Conflict
	// Changed is false when nothing differs from the previous Evaluate (same slices).
	Changed bool
}

// Evaluate makes the policy of every service selected by a rule. tr is translate's output for
// the same services (after Prepare): a service gets policy only where it has a ServiceEntry, on
// the hosts and ports it was emitted with. Only services whose snapshot pointer, emitted hosts or
// ports changed since the last call (or all, after SetRules) are re-evaluated.
func (e *Engine) Evaluate(services []*registry.Service, tr *translate.Output) Result {
	pass := e.out.pass + 1
	changed := false
	var patched []*policyChange
	full := false
	for _, s := range services {
		en, src := e.lookup(s)
		en.seen = pass
		var sh *translate.ServiceHosts
		if tr != nil {
			// Where it was last time, usually: one comparison instead of a search.
			if i := en.hostIdx; i < len(tr.Hosts) && tr.Hosts[i].Source == src {
				sh = &tr.Hosts[i]
			} else if i, ok := slices.BinarySearchFunc(tr.Hosts, src, func(h translate.ServiceHosts, s string) int { return strings.Compare(h.Source, s) }); ok {
				sh, en.hostIdx = &tr.Hosts[i], i
			}
		}
		if !en.dirty && en.policy != nil && sameHosts(en.sh, sh) {
			continue
		}
		en.sh, en.dirty = sh, false
		old := en.policy
		en.policy = e.build(en, src, sh, old)
		if !old.same(en.policy) {
			changed = true
			patched = append(patched, &policyChange{old, en.policy})
			full = full || !old.patchable(en.policy)
		}
	}
	if len(e.svcs) > len(services) {
		for src, en := range e.svcs {
			if en.seen != pass {
				if en.policy != nil && !en.policy.empty() {
					changed, full = true, true
				}
				delete(e.svcs, src)
				if e.byPtr[en.in] == en {
					delete(e.byPtr, en.in)
				}
			}
		}
	}
	e.out.pass = pass
	switch {
	case e.out.dr == nil || full:
		e.collect()
	case changed:
		if !e.patch(patched) {
			e.collect()
		}
	}
	return Result{
		Resources: map[string][]*istio.Resource{istio.CollectionDestinationRule: e.out.dr, istio.CollectionVirtualService: e.out.vs},
		Invalid:   e.out.invalid, Warnings: e.out.warnings, Conflicts: e.out.conflicts, Changed: changed,
	}
}

func sameHosts(a, b *translate.ServiceHosts) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Namespace == b.Namespace && slices.Equal(a.Hosts, b.Hosts) && slices.Equal(a.Ports, b.Ports)
}

// policyChange is one service's policy before and after a change.
type policyChange struct{ old, new *policy }

// patchable reports whether a change only replaces resources in place: the same resources exist
// (by presence) before and after, and neither side has invalid ones or warnings to re-sort.
func (p *policy) patchable(n *policy) bool {
	if p == nil || n == nil {
		return false
	}
	return (p.dr == nil) == (n.dr == nil) && (p.vs == nil) == (n.vs == nil) &&
		len(p.invalid)+len(n.invalid)+len(p.warnings)+len(n.warnings) == 0
}

// patch replaces changed resources in copies of the sorted outputs (binary search by name): the
// common case of an instance change costs a copy of pointers, not a sort.
func (e *Engine) patch(changes []*policyChange) bool {
	dr, vs := slices.Clone(e.out.dr), slices.Clone(e.out.vs)
	drChanged, vsChanged, missed := false, false, false
	replace := func(list []*istio.Resource, old, n *istio.Resource) bool {
		if old == n || old == nil {
			return false
		}
		i, ok := slices.BinarySearchFunc(list, old, func(a, b *istio.Resource) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		if !ok || list[i] != old {
			missed = true // not where it should be: the caller rebuilds
			return false
		}
		list[i] = n
		return true
	}
	for _, c := range changes {
		if replace(dr, c.old.dr, c.new.dr) {
			drChanged = true
		}
		if replace(vs, c.old.vs, c.new.vs) {
			vsChanged = true
		}
	}
	if missed {
		return false
	}
	if drChanged {
		e.out.dr = dr
	}
	if vsChanged {
		e.out.vs = vs
	}
	return true
}

// collect rebuilds the sorted outputs from every entry's policy: a linear pass over pointers.
func (e *Engine) collect() {
	dr, vs := []*istio.Resource{}, []*istio.Resource{}
	var inv []istio.Invalid
	var warn []istio.Warning
	var conf []Conflict
	for _, en := range e.svcs {
		p := en.policy
		if p == nil {
			continue
		}
		if p.dr != nil {
			dr = append(dr, p.dr)
		}
		if p.vs != nil {
			vs = append(vs, p.vs)
		}
		inv = append(inv, p.invalid...)
		warn = append(warn, p.warnings...)
		conf = append(conf, en.lost...)
	}
	byName := func(a, b *istio.Resource) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	slices.SortFunc(dr, byName)
	slices.SortFunc(vs, byName)
	slices.SortFunc(inv, func(a, b istio.Invalid) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Collection, b.Collection), cmp.Compare(a.Detail, b.Detail))
	})
	slices.SortFunc(warn, func(a, b istio.Warning) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Collection, b.Collection), cmp.Compare(a.Detail, b.Detail))
	})
	slices.SortFunc(conf, func(a, b Conflict) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Section, b.Section), cmp.Compare(a.Loser, b.Loser))
	})
	// Keep the previous slice of a collection whose content (pointers) did not change: the
	// producer contract lets the bridge skip it.
	if slices.Equal(dr, e.out.dr) && e.out.dr != nil {
		dr = e.out.dr
	}
	if slices.Equal(vs, e.out.vs) && e.out.vs != nil {
		vs = e.out.vs
	}
	e.out.dr, e.out.vs, e.out.invalid, e.out.warnings, e.out.conflicts = dr, vs, inv, warn, conf
}

// Explain returns, for every service whose host or source matches query (all when empty), which
// rules matched it, which subsets and routes they produced, and why. Sorted by service.
func (e *Engine) Explain(query string) []Explanation {
	var out []Explanation
	for src, en := range e.svcs {
		if query != "" && src != query && !slices.Contains(en.hosts, strings.ToLower(query)) {
			continue
		}
		if len(en.rules) == 0 && query == "" {
			continue
		}
		out = append(out, en.explain(src))
	}
	slices.SortFunc(out, func(a, b Explanation) int { return strings.Compare(a.Service, b.Service) })
	return out
}
