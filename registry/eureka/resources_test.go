package eureka

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// eurekaHosts are the registry table's default hosts for type eureka (registry/registries; this
// package cannot import it, which imports this one).
var eurekaHosts = translate.HostTemplates{Application: `{{.Name}}.eureka`, DubboApplication: `{{.Name}}.eureka`}

// resources translates services of a registry "eureka" with the default options, as the bridge
// does, and renders every resource with its spec for golden files.
func resources(t testing.TB, services []*registry.Service) []map[string]any {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "eureka", Hosts: eurekaHosts}}})
	if err != nil {
		t.Fatal(err)
	}
	var in []*registry.Service
	for _, s := range services {
		c := s.Clone()
		c.Registry = "eureka"
		in = append(in, c)
	}
	out := tr.Translate(in)
	for _, inv := range out.Invalid {
		t.Errorf("translate left out %s %s/%s (%s): %s: %s", inv.Collection, inv.Namespace, inv.Name, inv.Source, inv.Reason, inv.Detail)
	}
	var rendered []map[string]any
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
		for _, r := range out.Resources[coll] {
			msg, err := r.DecodeSpec()
			if err != nil {
				t.Fatal(err)
			}
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
