package translate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// goldenOptions configures the registries of testdata/services.yaml. The WorkloadEntry cap is tiny
// so that the golden file shows the fallback to inline endpoints. Labels are all kept so that it
// shows how each registry's labels are sanitised; the routing mode's choice is labelpolicy_test.go's.
func goldenOptions(mode string) Options {
	return Options{
		EndpointMode:                   mode,
		Labels:                         LabelOptions{Mode: LabelModeAll},
		MaxWorkloadEntriesPerNamespace: 4,
		Registries: []RegistryOptions{
			{Name: "zk", Hosts: zookeeperHosts},
			{Name: "nacos-prod", Hosts: nacosHosts},
			{Name: "eureka", Hosts: eurekaHosts},
			{Name: "consul", Hosts: consulHosts},
			{Name: "file", Hosts: fileHosts, Namespace: "file-services"},
		},
	}
}

func loadServices(t testing.TB, path string) []*registry.Service {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ss []*registry.Service
	if err := yaml.UnmarshalStrict(b, &ss); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ss
}

func TestGolden(t *testing.T) {
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		t.Run(mode, func(t *testing.T) {
			tr, err := New(goldenOptions(mode))
			if err != nil {
				t.Fatal(err)
			}
			out := tr.Translate(loadServices(t, "testdata/services.yaml"))
			checkOutput(t, out)
			got := renderGolden(t, out)
			path := filepath.Join("testdata", "golden-"+mode+".yaml")
			golden.Compare(t, path, got)
		})
	}
}

// checkOutput asserts the invariants every output must satisfy whatever the input: sorted
// collections, unique names, bodies that are the deterministic marshal of the spec under the right
// type URL, versions that are the hash of what is sent, and resources that pass validation.
func checkOutput(t testing.TB, out *Output) {
	t.Helper()
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
		rs, ok := out.Resources[coll]
		if !ok {
			t.Errorf("collection %s missing from the output", coll)
		}
		for i, r := range rs {
			if r.Collection != coll {
				t.Errorf("%s/%s: collection %q in list %q", r.Namespace, r.Name, r.Collection, coll)
			}
			if i > 0 && compareResource(rs[i-1], r) >= 0 {
				t.Errorf("%s: %s/%s not after %s/%s", coll, r.Namespace, r.Name, rs[i-1].Namespace, rs[i-1].Name)
			}
			// The body is built by hand (wire.go); it must be exactly what protobuf-go's
			// deterministic marshal gives for the spec it holds. Its content is what the golden
			// files check.
			spec, err := r.DecodeSpec()
			if err != nil {
				t.Fatal(err)
			}
			body, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, r.Body.GetValue()) {
				t.Errorf("%s/%s: body is not the deterministic marshal of its spec", r.Namespace, r.Name)
			}
			wantURL := map[string]string{istio.CollectionServiceEntry: istio.SpecTypeURLServiceEntry, istio.CollectionWorkloadEntry: istio.SpecTypeURLWorkloadEntry}[coll]
			if r.Body.GetTypeUrl() != wantURL {
				t.Errorf("%s/%s: type URL %q, want %q", r.Namespace, r.Name, r.Body.GetTypeUrl(), wantURL)
			}
			if v := istio.Version(body, r.Labels, r.Annotations); v != r.Version {
				t.Errorf("%s/%s: version %q, want %q", r.Namespace, r.Name, r.Version, v)
			}
			if ps := istio.ValidateResource(r, spec); len(ps) > 0 {
				t.Errorf("%s/%s emitted although invalid: %v", r.Namespace, r.Name, ps)
			}
		}
	}
}

// renderGolden renders an output as YAML: specs as protojson (Istio's own YAML form), then
// invalid and warnings.
func renderGolden(t testing.TB, out *Output) []byte {
	t.Helper()
	type res struct {
		Namespace   string            `json:"namespace"`
		Name        string            `json:"name"`
		Version     string            `json:"version"`
		Source      string            `json:"source"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Spec        json.RawMessage   `json:"spec"`
	}
	type note struct {
		Collection string `json:"collection"`
		Namespace  string `json:"namespace,omitempty"`
		Name       string `json:"name,omitempty"`
		Source     string `json:"source"`
		Reason     string `json:"reason"`
		Detail     string `json:"detail"`
	}
	doc := struct {
		ServiceEntries  []res  `json:"serviceEntries"`
		WorkloadEntries []res  `json:"workloadEntries"`
		Invalid         []note `json:"invalid"`
		Warnings        []note `json:"warnings"`
	}{ServiceEntries: []res{}, WorkloadEntries: []res{}, Invalid: []note{}, Warnings: []note{}}
	for coll, dst := range map[string]*[]res{istio.CollectionServiceEntry: &doc.ServiceEntries, istio.CollectionWorkloadEntry: &doc.WorkloadEntries} {
		for _, r := range out.Resources[coll] {
			spec, err := r.DecodeSpec()
			if err != nil {
				t.Fatal(err)
			}
			js, err := protojson.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			*dst = append(*dst, res{r.Namespace, r.Name, r.Version, r.Source, r.Labels, r.Annotations, js})
		}
	}
	for _, i := range out.Invalid {
		doc.Invalid = append(doc.Invalid, note(i))
	}
	for _, w := range out.Warnings {
		doc.Warnings = append(doc.Warnings, note(w))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	return y
}
