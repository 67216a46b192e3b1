package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"path/filepath"
	"sigs.k8s.io/yaml"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// scopeWorld is the scope producer behind a real translator, as the pipeline wires them.
type scopeWorld struct {
	t  *testing.T
	tp *bridge.TranslateProducer
	sp *ScopeProducer
}

func newScopeWorld(t *testing.T, cfg ScopeConfig) *scopeWorld {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "reg", Namespace: "ns"}, {Name: "other", Namespace: "other"}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &scopeWorld{t: t, tp: bridge.Translate(tr), sp: NewScopeProducer(cfg)}
	w.sp.Follow(w.tp)
	return w
}

func (w *scopeWorld) push(ss []*registry.Service) []*istio.Resource {
	snap := &merge.Snapshot{Services: ss}
	w.tp.Produce(snap)
	p := w.sp.Produce(snap)
	for _, inv := range p.Invalid {
		w.t.Errorf("invalid %+v", inv)
	}
	return p.Resources[istio.CollectionSidecar]
}

// scopeSvc renders one grpc service of registry reg with consumers.
func scopeDoc(svcs ...string) string { return "services:\n" + strings.Join(svcs, "") }

func scopeService(name string, consumers ...string) string {
	s := fmt.Sprintf("  - name: %s\n    kind: application\n    ports: [%s]\n", name, grpcPort)
	if len(consumers) > 0 {
		s += "    consumers: [" + strings.Join(consumers, ", ") + "]\n"
	}
	return s + "    instances:\n" + inst("10.0.0.1", "grpc: 9090", "")
}

// egressOf returns each Sidecar as "ns/name app=<selector>: hosts".
func egressOf(t *testing.T, rs []*istio.Resource) []string {
	t.Helper()
	var out []string
	for _, r := range rs {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		sc := spec.(*networking.Sidecar)
		out = append(out, fmt.Sprintf("%s/%s %v: %s", r.Namespace, r.Name, sc.GetWorkloadSelector().GetLabels(), strings.Join(sc.GetEgress()[0].GetHosts(), " ")))
	}
	return out
}

// TestScopes follows consumers through a sequence of registry states: a consumer's scope lists
// exactly what it consumes plus alwaysAllow; a new consumption widens it; a consumer node that
// disappears narrows nothing (never narrower than what was seen); a service that is gone leaves
// the scope; an unchanged consumer's Sidecar keeps its pointer. Each step's Sidecars are compared
// with testdata/golden/scopes.txt as well.
func TestScopes(t *testing.T) {
	w := newScopeWorld(t, ScopeConfig{Enabled: true})
	var all bytes.Buffer
	steps := []struct {
		name string
		doc  string
		want []string
		// sameAdmin: the admin consumer's Sidecar must be the previous push's pointer.
		sameAdmin bool
	}{
		{"initial", scopeDoc(scopeService("a", "web"), scopeService("b", "web", "admin"), scopeService("c")), []string{
			"ns/scope-admin map[app:admin]: istio-system/* ns/b.reg",
			"ns/scope-web map[app:web]: istio-system/* ns/a.reg ns/b.reg",
		}, false},
		{"web consumes c: widened at once", scopeDoc(scopeService("a", "web"), scopeService("b", "web", "admin"), scopeService("c", "web")), []string{
			"ns/scope-admin map[app:admin]: istio-system/* ns/b.reg",
			"ns/scope-web map[app:web]: istio-system/* ns/a.reg ns/b.reg ns/c.reg",
		}, true},
		{"web's consumer node of a gone: not narrowed", scopeDoc(scopeService("a"), scopeService("b", "web", "admin"), scopeService("c", "web")), []string{
			"ns/scope-admin map[app:admin]: istio-system/* ns/b.reg",
			"ns/scope-web map[app:web]: istio-system/* ns/a.reg ns/b.reg ns/c.reg",
		}, true},
		{"service a gone: its host leaves", scopeDoc(scopeService("b", "web", "admin"), scopeService("c", "web")), []string{
			"ns/scope-admin map[app:admin]: istio-system/* ns/b.reg",
			"ns/scope-web map[app:web]: istio-system/* ns/b.reg ns/c.reg",
		}, true},
		{"service b gone: admin consumes nothing, no Sidecar", scopeDoc(scopeService("c", "web")), []string{
			"ns/scope-web map[app:web]: istio-system/* ns/c.reg",
		}, false},
	}
	var prevAdmin *istio.Resource
	for _, s := range steps {
		rs := w.push(services(t, s.doc))
		if got := egressOf(t, rs); !slices.Equal(got, s.want) {
			t.Errorf("%s:\n got %q\nwant %q", s.name, got, s.want)
		}
		var admin *istio.Resource
		for _, r := range rs {
			if r.Name == "scope-admin" {
				admin = r
			}
		}
		if s.sameAdmin && admin != prevAdmin {
			t.Errorf("%s: the unchanged admin scope got a new pointer", s.name)
		}
		prevAdmin = admin
		fmt.Fprintf(&all, "=== %s\n", s.name)
		renderSidecars(t, &all, rs)
	}
	golden.Compare(t, filepath.Join("testdata", "golden", "scopes.txt"), all.Bytes())
}

func renderSidecars(t *testing.T, b *bytes.Buffer, rs []*istio.Resource) {
	t.Helper()
	for _, r := range rs {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		y, err := yamlOf(spec)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(b, "--- Sidecar %s/%s (annotations %v)\n%s", r.Namespace, r.Name, r.Annotations, y)
	}
}

// TestScopesOptIn: which consumers get a Sidecar under each opt-in setting.
func TestScopesOptIn(t *testing.T) {
	doc := scopeDoc(scopeService("a", "web", "admin", "batch"))
	for _, c := range []struct {
		name string
		cfg  ScopeConfig
		want []string
	}{
		{"default off", ScopeConfig{}, nil},
		{"enabled", ScopeConfig{Enabled: true}, []string{"ns/scope-admin", "ns/scope-batch", "ns/scope-web"}},
		{"enabled, one excluded", ScopeConfig{Enabled: true, Exclude: []string{"batch"}}, []string{"ns/scope-admin", "ns/scope-web"}},
		{"one application", ScopeConfig{Applications: []string{"web"}}, []string{"ns/scope-web"}},
		{"a namespace, one excluded", ScopeConfig{Namespaces: []string{"ns"}, Exclude: []string{"web"}}, []string{"ns/scope-admin", "ns/scope-batch"}},
		{"another namespace", ScopeConfig{Namespaces: []string{"elsewhere"}}, nil},
		{"consumer namespace mapped", ScopeConfig{Applications: []string{"web"}, ConsumerNamespaces: map[string]string{"web": "frontend"}}, []string{"frontend/scope-web"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newScopeWorld(t, c.cfg)
			var got []string
			for _, r := range w.push(services(t, doc)) {
				got = append(got, r.Namespace+"/"+r.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestScopesReconfigure: a configuration change applies on the next push without a registry
// change, and the edges seen before stay (the consumer node gone meanwhile).
func TestScopesReconfigure(t *testing.T) {
	w := newScopeWorld(t, ScopeConfig{})
	if rs := w.push(services(t, scopeDoc(scopeService("a", "web")))); len(rs) != 0 {
		t.Fatalf("off by default, got %v", egressOf(t, rs))
	}
	w.sp.SetConfig(ScopeConfig{Applications: []string{"web"}, AlwaysAllow: []string{"istio-system/*", "./*"}})
	got := egressOf(t, w.push(services(t, scopeDoc(scopeService("a")))))
	if want := []string{"ns/scope-web map[app:web]: ./* istio-system/* ns/a.reg"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestScopeConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  ScopeConfig
		want string // "" = valid
	}{
		{ScopeConfig{}, ""},
		{ScopeConfig{Enabled: true, AlwaysAllow: []string{"istio-system/*", "*/mesh.example.com", "./*"}}, ""},
		{ScopeConfig{AlwaysAllow: []string{"istio-system"}}, "alwaysAllow[0]"},
		{ScopeConfig{Namespaces: []string{"Bad_NS"}}, "namespaces[0]"},
		{ScopeConfig{Applications: []string{"web"}, Exclude: []string{"web"}}, "exclude[0]"},
		{ScopeConfig{SelectorLabel: "not a key"}, "selectorLabel"},
		{ScopeConfig{ConsumerNamespaces: map[string]string{"web": "-x"}}, "consumerNamespaces.web"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: error %v, want one naming %q", c.cfg, err, c.want)
		}
	}
}

func TestScopeName(t *testing.T) {
	long := strings.Repeat("x", 70)
	for _, c := range []struct{ app, want string }{
		{"web", "scope-web"},
		{"Web_App", "scope-web-app-"},
		{long, "scope-" + long[:48]},
	} {
		got := scopeName(c.app)
		if !strings.HasPrefix(got, c.want) || len(got) > 63 || !istio.IsDNSLabel(got) {
			t.Errorf("scopeName(%q) = %q, want a DNS label starting %q", c.app, got, c.want)
		}
	}
	if scopeName("Web_App") == scopeName("web-app") {
		t.Error("distinct applications share a Sidecar name")
	}
}

// yamlOf renders a spec as YAML with stable spacing.
func yamlOf(spec proto.Message) ([]byte, error) {
	j, err := protojson.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		return nil, err
	}
	if j, err = json.Marshal(v); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}
