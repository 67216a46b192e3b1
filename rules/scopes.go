package rules

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// ScopeConfig is the `sidecarScopes:` block: a Sidecar per consumer application the registries
// record (Dubbo consumers/ nodes), limiting its egress to the hosts it consumes. docs/rules.md#sidecar-scopes.
type ScopeConfig struct {
	// Enabled is the default for every consumer application: off unless set. Off by default
	// because a Sidecar hides every host not listed from the workloads it selects: a consumer
	// that also calls something the registry does not record (a Kubernetes service, an external
	// API) loses it the moment the bridge starts, unless alwaysAllow names it.
	Enabled bool `yaml:"enabled"`
	// Namespaces opts in the consumers whose Sidecar goes to one of these namespaces.
	Namespaces []string `yaml:"namespaces"`
	// Applications opts in these consumer applications, whatever Enabled and Namespaces say.
	Applications []string `yaml:"applications"`
	// Exclude opts these consumer applications out (Enabled and Namespaces do not apply to them).
	Exclude []string `yaml:"exclude"`
	// AlwaysAllow are egress hosts every scope lists besides the consumed ones, in Istio's
	// "namespace/dnsName" form. Default ["istio-system/*"] (the control plane, the mesh's
	// gateways); setting it replaces the default.
	AlwaysAllow []string `yaml:"alwaysAllow"`
	// SelectorLabel is the workload label holding the application name. Default "app".
	SelectorLabel string `yaml:"selectorLabel"`
	// ConsumerNamespaces maps an application to the namespace its workloads run in. Default: the
	// namespace of each service it was seen consuming (one Sidecar in each).
	ConsumerNamespaces map[string]string `yaml:"consumerNamespaces"`
}

// DefaultAlwaysAllow is alwaysAllow's default.
var DefaultAlwaysAllow = []string{"istio-system/*"}

// WithDefaults fills the defaults in.
func (c ScopeConfig) WithDefaults() ScopeConfig {
	if c.AlwaysAllow == nil {
		c.AlwaysAllow = slices.Clone(DefaultAlwaysAllow)
	}
	c.SelectorLabel = cmp.Or(c.SelectorLabel, "app")
	return c
}

// Validate checks every field, naming its YAML path.
func (c ScopeConfig) Validate() error {
	var errs []error
	for i, ns := range c.Namespaces {
		if !istio.IsDNSLabel(ns) {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is not a namespace name (a lower-case DNS label)", i, ns))
		}
	}
	for i, app := range c.Exclude {
		if slices.Contains(c.Applications, app) {
			errs = append(errs, fmt.Errorf("exclude[%d]: %q is also in sidecarScopes.applications; opt it in or out, not both", i, app))
		}
	}
	for i, h := range c.AlwaysAllow {
		sc := &networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: []string{h}}}}
		if _, err := istio.NewResource(istio.CollectionSidecar, "default", "check", nil, nil, sc); err != nil {
			errs = append(errs, fmt.Errorf("alwaysAllow[%d]: %q: want namespace/dnsName (e.g. istio-system/*): %w", i, h, err))
		}
	}
	if c.SelectorLabel != "" {
		if !istio.ValidLabelKey(c.SelectorLabel) {
			errs = append(errs, fmt.Errorf("selectorLabel: %q is not a valid label key", c.SelectorLabel))
		}
	}
	for _, app := range slices.Sorted(maps.Keys(c.ConsumerNamespaces)) {
		if ns := c.ConsumerNamespaces[app]; !istio.IsDNSLabel(ns) {
			errs = append(errs, fmt.Errorf("consumerNamespaces.%s: %q is not a namespace name (a lower-case DNS label)", app, ns))
		}
	}
	return errors.Join(errs...)
}

// on tells whether the consumer app's Sidecar in namespace ns is emitted.
func (c ScopeConfig) on(app, ns string) bool {
	switch {
	case slices.Contains(c.Applications, app):
		return true
	case slices.Contains(c.Exclude, app):
		return false
	}
	return c.Enabled || slices.Contains(c.Namespaces, ns)
}

// AnnotationConsumer names the consumer application a Sidecar scope was made for.
const AnnotationConsumer = "mcp-bridge.io/consumer"

// ScopeProducer makes the Sidecar scopes. It comes after the translate producer it follows
// (Output.Hosts of the same push). Safe for concurrent use (SetConfig from a reload).
//
// A consumer's scope is never narrower than what it was seen calling: an edge (consumer ->
// service) is added the push a registry first reports it and kept until the service itself is
// gone, so a consumer whose consumers/ node blinks (an ephemeral node during a restart) keeps its
// hosts. A push is O(changed): a service whose snapshot pointer and hosts did not change is
// skipped, and only the consumers of changed services get a new Sidecar.
type ScopeProducer struct {
	mu    sync.Mutex
	cfg   ScopeConfig
	tr    *bridge.TranslateProducer
	all   bool                         // rebuild every consumer next push (config changed)
	svcs  map[string]*scopeSvc         // by source
	edges map[string]map[string]bool   // consumer app -> sources it was seen consuming
	res   map[string][]*istio.Resource // consumer app -> its Sidecars (one per namespace)
	bad   map[string][]istio.Invalid
	out   []*istio.Resource
	inv   []istio.Invalid
	gen   uint64
}

type scopeSvc struct {
	in        *registry.Service
	namespace string
	hosts     []string
	gen       uint64
}

// NewScopeProducer returns the producer with the configuration (defaults filled in here).
func NewScopeProducer(cfg ScopeConfig) *ScopeProducer {
	return &ScopeProducer{cfg: cfg.WithDefaults(), svcs: map[string]*scopeSvc{}, edges: map[string]map[string]bool{},
		res: map[string][]*istio.Resource{}, bad: map[string][]istio.Invalid{}}
}

// Follow sets the translate producer whose output the next pushes read.
func (p *ScopeProducer) Follow(tr *bridge.TranslateProducer) {
	p.mu.Lock()
	p.tr = tr
	p.mu.Unlock()
}

// SetConfig replaces the configuration; the next push rebuilds every scope (edges are kept).
func (p *ScopeProducer) SetConfig(cfg ScopeConfig) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg = cfg.WithDefaults()
	if !scopeConfigEqual(cfg, p.cfg) {
		p.cfg, p.all = cfg, true
	}
}

func scopeConfigEqual(a, b ScopeConfig) bool {
	return a.Enabled == b.Enabled && slices.Equal(a.Namespaces, b.Namespaces) && slices.Equal(a.Applications, b.Applications) &&
		slices.Equal(a.Exclude, b.Exclude) && slices.Equal(a.AlwaysAllow, b.AlwaysAllow) && a.SelectorLabel == b.SelectorLabel &&
		maps.Equal(a.ConsumerNamespaces, b.ConsumerNamespaces)
}

// Name is "scopes".
func (p *ScopeProducer) Name() string { return "scopes" }

// Produce updates the scopes of the consumers of changed services.
func (p *ScopeProducer) Produce(snap *merge.Snapshot) *bridge.Production {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tr == nil || p.tr.Last() == nil {
		return &bridge.Production{}
	}
	out := p.tr.Last()
	p.gen++
	dirty := map[string]bool{}
	for _, s := range snap.Services {
		src := source(s)
		sv := p.svcs[src]
		ns, hosts := hostsOf(out, src)
		if sv != nil && sv.in == s && sv.namespace == ns && slices.Equal(sv.hosts, hosts) {
			sv.gen = p.gen
			continue
		}
		if sv == nil {
			sv = &scopeSvc{}
			p.svcs[src] = sv
		}
		hostsChanged := sv.namespace != ns || !slices.Equal(sv.hosts, hosts)
		sv.in, sv.namespace, sv.hosts, sv.gen = s, ns, hosts, p.gen
		for _, app := range s.Consumers {
			if p.edges[app] == nil {
				p.edges[app] = map[string]bool{}
			}
			if !p.edges[app][src] {
				p.edges[app][src] = true
				dirty[app] = true
			}
		}
		if hostsChanged {
			p.markConsumers(src, dirty)
		}
	}
	for src, sv := range p.svcs {
		if sv.gen != p.gen { // gone from the registries: its hosts are gone too
			for app, srcs := range p.edges {
				if srcs[src] {
					dirty[app] = true
					delete(srcs, src)
				}
			}
			delete(p.svcs, src)
		}
	}
	if p.all {
		for app := range p.edges {
			dirty[app] = true
		}
		for app := range p.res {
			dirty[app] = true
		}
		p.all = false
	}
	if len(dirty) == 0 && p.out != nil {
		return &bridge.Production{Resources: map[string][]*istio.Resource{istio.CollectionSidecar: p.out}, Invalid: p.inv}
	}
	changed := false
	for app := range dirty {
		if len(p.edges[app]) == 0 {
			delete(p.edges, app)
		}
		rs, bad := p.build(app)
		if !slices.Equal(rs, p.res[app]) || len(bad) != len(p.bad[app]) {
			changed = true
		}
		setOrDelete(p.res, app, rs)
		setOrDelete(p.bad, app, bad)
	}
	if changed || p.out == nil {
		p.out = slices.SortedFunc(func(yield func(*istio.Resource) bool) {
			for _, rs := range p.res {
				for _, r := range rs {
					if !yield(r) {
						return
					}
				}
			}
		}, func(a, b *istio.Resource) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		p.inv = nil
		for _, app := range slices.Sorted(maps.Keys(p.bad)) {
			p.inv = append(p.inv, p.bad[app]...)
		}
	}
	return &bridge.Production{Resources: map[string][]*istio.Resource{istio.CollectionSidecar: p.out}, Invalid: p.inv}
}

func setOrDelete[T any](m map[string][]T, k string, v []T) {
	if len(v) == 0 {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// markConsumers marks dirty every consumer with an edge to src.
func (p *ScopeProducer) markConsumers(src string, dirty map[string]bool) {
	for app, srcs := range p.edges {
		if srcs[src] {
			dirty[app] = true
		}
	}
}

func hostsOf(out *translate.Output, src string) (string, []string) {
	i, ok := slices.BinarySearchFunc(out.Hosts, src, func(h translate.ServiceHosts, s string) int { return strings.Compare(h.Source, s) })
	if !ok {
		return "", nil
	}
	return out.Hosts[i].Namespace, out.Hosts[i].Hosts
}

// build makes the consumer's Sidecars, reusing the previous resource when its content is the
// same (unchanged resources keep their pointer).
func (p *ScopeProducer) build(app string) ([]*istio.Resource, []istio.Invalid) {
	var egress []string
	byNS := map[string]bool{}
	for src := range p.edges[app] {
		sv := p.svcs[src]
		if sv == nil || sv.namespace == "" {
			continue // no ServiceEntry: no host to allow
		}
		byNS[sv.namespace] = true
		for _, h := range sv.hosts {
			egress = append(egress, sv.namespace+"/"+h)
		}
	}
	if len(egress) == 0 {
		return nil, nil
	}
	if ns, ok := p.cfg.ConsumerNamespaces[app]; ok {
		byNS = map[string]bool{ns: true}
	}
	egress = append(egress, p.cfg.AlwaysAllow...)
	slices.Sort(egress)
	egress = slices.Compact(egress)
	name := scopeName(app)
	prev := map[string]*istio.Resource{}
	for _, r := range p.res[app] {
		prev[r.Namespace] = r
	}
	var rs []*istio.Resource
	var bad []istio.Invalid
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		if !p.cfg.on(app, ns) {
			continue
		}
		spec := &networking.Sidecar{
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{p.cfg.SelectorLabel: app}},
			Egress:           []*networking.IstioEgressListener{{Hosts: egress}},
		}
		r, err := istio.NewResource(istio.CollectionSidecar, ns, name, nil, map[string]string{AnnotationConsumer: app}, spec)
		if err != nil {
			bad = append(bad, istio.Invalid{Collection: istio.CollectionSidecar, Namespace: ns, Name: name, Source: "consumer/" + app,
				Reason: istio.ReasonInvalidSpec, Detail: err.Error()})
			continue
		}
		r.Source = "consumer/" + app
		if old := prev[ns]; old != nil && old.Version == r.Version {
			r = old
		}
		rs = append(rs, r)
	}
	return rs, bad
}

// scopeName is the Sidecar's name: "scope-<app>" as a DNS label, cut with a hash suffix when long.
func scopeName(app string) string {
	b := []byte("scope-" + strings.ToLower(app))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	s := strings.TrimRight(string(b), "-")
	if len(s) <= 63 && s == "scope-"+app {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(app))
	suffix := fmt.Sprintf("-%08x", h.Sum32())
	if len(s) > 63-len(suffix) {
		s = strings.TrimRight(s[:63-len(suffix)], "-")
	}
	return s + suffix
}

// ScopeStatus is one consumer's scope, for /debug/scopes.
type ScopeStatus struct {
	Application string   `json:"application"`
	Services    []string `json:"services"`
	Sidecars    []string `json:"sidecars"` // namespace/name of those emitted
}

// Status lists every consumer seen, what it consumes and its Sidecars.
func (p *ScopeProducer) Status() []ScopeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ScopeStatus, 0, len(p.edges))
	for _, app := range slices.Sorted(maps.Keys(p.edges)) {
		st := ScopeStatus{Application: app, Services: slices.Sorted(maps.Keys(p.edges[app])), Sidecars: []string{}}
		for _, r := range p.res[app] {
			st.Sidecars = append(st.Sidecars, r.Namespace+"/"+r.Name)
		}
		out = append(out, st)
	}
	return out
}
