package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// world is the engine with a real translator in front of it, as the pipeline wires them.
type world struct {
	t  testing.TB
	tr *translate.Translator
	e  *Engine
}

func newWorld(t testing.TB, rulesYAML string) *world {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "reg", Namespace: "ns"}, {Name: "other", Namespace: "other"}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, tr: tr, e: New(Options{Host: tr.Host})}
	if rulesYAML != "" {
		rs, err := ParseFile("rules.yaml", []byte(rulesYAML))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.e.SetRules(rs); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// services parses a file-registry services document, all in registry "reg".
func services(t testing.TB, doc string) []*registry.Service {
	t.Helper()
	ss, err := file.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Registry == "" {
			s.Registry = "reg"
		}
	}
	return ss
}

// step runs one push as the pipeline wires it: the rules' label keys to translate, Prepare,
// translate, Evaluate.
func (w *world) step(ss []*registry.Service) Result {
	w.tr.SetRoutedLabels(w.e.LabelKeys())
	out := w.tr.Translate(w.e.Prepare(ss))
	for _, inv := range out.Invalid {
		w.t.Fatalf("translate: invalid %+v", inv)
	}
	return w.e.Evaluate(ss, out)
}

// render prints the generated resources as YAML, then every explanation.
func (w *world) render(res Result) string {
	var b bytes.Buffer
	for _, coll := range []string{istio.CollectionDestinationRule, istio.CollectionVirtualService} {
		for _, r := range res.Resources[coll] {
			spec, err := r.DecodeSpec()
			if err != nil {
				w.t.Fatal(err)
			}
			j, err := protojson.Marshal(spec)
			if err != nil {
				w.t.Fatal(err)
			}
			var v any
			_ = json.Unmarshal(j, &v) // protojson output is not stable in spacing: re-marshal
			j, _ = json.Marshal(v)
			y, err := yaml.JSONToYAML(j)
			if err != nil {
				w.t.Fatal(err)
			}
			fmt.Fprintf(&b, "--- %s %s/%s (annotations %v)\n%s", coll[strings.LastIndexByte(coll, '/')+1:], r.Namespace, r.Name, r.Annotations, y)
		}
	}
	for _, inv := range res.Invalid {
		fmt.Fprintf(&b, "INVALID %s %s/%s: %s: %s\n", inv.Collection, inv.Namespace, inv.Name, inv.Reason, inv.Detail)
	}
	for _, c := range res.Conflicts {
		fmt.Fprintf(&b, "CONFLICT %s %s: %s wins over %s (%s)\n", c.Service, c.Section, c.Winner, c.Loser, c.Why)
	}
	b.WriteString("=== explain\n")
	for _, x := range w.e.Explain("") {
		x.WriteText(&b)
	}
	return b.String()
}

// checkNoWeightZero fails on a route destination with weight 0 among several: Istio drops it,
// and proxyless clients fail RPCs when it comes back.
func checkNoWeightZero(t testing.TB, res Result) {
	t.Helper()
	for _, r := range res.Resources[istio.CollectionVirtualService] {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		vs := spec.(*networking.VirtualService)
		for _, h := range vs.GetHttp() {
			if len(h.GetRoute()) > 1 {
				for _, d := range h.GetRoute() {
					if d.GetWeight() == 0 {
						t.Errorf("%s route %s: weight-0 destination %v", r.Name, h.GetName(), d)
					}
				}
			}
		}
		for _, tr := range vs.GetTcp() {
			if len(tr.GetRoute()) > 1 {
				for _, d := range tr.GetRoute() {
					if d.GetWeight() == 0 {
						t.Errorf("%s tcp route: weight-0 destination %v", r.Name, d)
					}
				}
			}
		}
	}
}

// checkSubsetsNamed fails on a DestinationRule subset (other than those of the subsets kind,
// which no engine route uses) that no HTTP route of the same service's VirtualService names:
// a proxyless gRPC client watches only the clusters its routes name, so such a subset's cluster
// would be unknown to it when a route to it returns ("unknown cluster selected for RPC").
func checkSubsetsNamed(t testing.TB, res Result) {
	t.Helper()
	named := map[string]map[string]bool{} // VirtualService name -> subsets its HTTP routes name
	http := map[string]bool{}
	for _, r := range res.Resources[istio.CollectionVirtualService] {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		named[r.Name] = map[string]bool{}
		for _, h := range spec.(*networking.VirtualService).GetHttp() {
			http[r.Name] = true
			for _, d := range h.GetRoute() {
				named[r.Name][d.GetDestination().GetSubset()] = true
			}
		}
	}
	for _, r := range res.Resources[istio.CollectionDestinationRule] {
		if !http[r.Name] {
			continue // no HTTP routes at all (TCP-only service, or no routing rule)
		}
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spec.(*networking.DestinationRule).GetSubsets() {
			if strings.Contains(s.GetName(), "-base") || strings.HasPrefix(s.GetName(), "version-") || strings.HasPrefix(s.GetName(), "env-") {
				continue // the subsets kind's (golden scenarios key them by version and env)
			}
			if !named[r.Name][s.GetName()] {
				t.Errorf("%s: subset %s is named by no HTTP route", r.Name, s.GetName())
			}
		}
	}
}
