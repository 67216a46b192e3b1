package testkit

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// MustJSON renders v as indented JSON with a final newline (golden files).
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Resources renders every ServiceEntry and WorkloadEntry (of a translation or the bridge's
// output) with its spec, for golden files; a resource left out (invalid) fails the test, as the
// estate fixtures hold only valid services.
func Resources(t testing.TB, resources map[string][]*istio.Resource, invalid []istio.Invalid) []map[string]any {
	t.Helper()
	for _, inv := range invalid {
		t.Errorf("left out %s %s/%s (%s): %s: %s", inv.Collection, inv.Namespace, inv.Name, inv.Source, inv.Reason, inv.Detail)
	}
	var rendered []map[string]any
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
		for _, r := range resources[coll] {
			msg, err := r.DecodeSpec()
			if err != nil {
				t.Fatal(err)
			}
			// protojson's spacing is deliberately unstable: go through encoding/json.
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var spec any
			if err := json.Unmarshal(b, &spec); err != nil {
				t.Fatal(err)
			}
			rendered = append(rendered, map[string]any{
				"collection": coll, "namespace": r.Namespace, "name": r.Name,
				"labels": r.Labels, "annotations": r.Annotations, "spec": spec,
			})
		}
	}
	return rendered
}

// Lines returns the lines of a fixture file (lines up to 1 MiB: captured URLs are long).
func Lines(t testing.TB, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return out
}

// CheckMember fails the test unless a member's ports are in range and named as its instance's,
// and no label of it is a credential (sensitive says which keys are): what every parser of
// registry entries promises, checked by fuzz targets.
func CheckMember(t testing.TB, ports []registry.Port, in registry.Instance, sensitive func(string) bool) {
	t.Helper()
	if len(ports) == 0 || len(ports) != len(in.Ports) {
		t.Fatalf("ports %v, instance ports %v", ports, in.Ports)
	}
	for _, p := range ports {
		if n, ok := in.Ports[p.Name]; !ok || n == 0 || n > 65535 {
			t.Fatalf("port %q: %d, %v", p.Name, n, ok)
		}
	}
	for k := range in.Labels {
		if sensitive(k) {
			t.Fatalf("label %q is a credential", k)
		}
	}
}
