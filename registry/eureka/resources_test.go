package eureka

import (
	"testing"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
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
	// Every registry label, as before lean labels: this test checks the adapter's mapping of the
	// registry's data; which labels routing keeps is translate's (its own tests).
	tr, err := translate.New(translate.Options{Labels: translate.LabelOptions{Mode: translate.LabelModeAll},
		Registries: []translate.RegistryOptions{{Name: "eureka", Hosts: eurekaHosts}}})
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
	return testkit.Resources(t, out.Resources, out.Invalid)
}
