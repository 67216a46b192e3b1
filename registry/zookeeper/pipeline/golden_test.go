package pipeline_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/translate"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

// TestGoldenIstio turns what the adapter reported for the captured registrations
// (../testdata/model-both.golden.yaml, itself checked against a real ZooKeeper by the adapter's
// TestGoldenModel) into Istio resources, in both endpoint modes, and compares them with
// testdata/istio-<mode>.golden.yaml (regenerate with -update and review the diff).
func TestGoldenIstio(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "model-both.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Services []*registry.Service `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &model); err != nil {
		t.Fatal(err)
	}
	for _, s := range model.Services {
		s.Registry = "zk" // the merge layer sets it from the sink the service came on
	}
	zkType, _ := registries.Lookup("zookeeper")
	for _, mode := range []string{translate.EndpointModeWorkloadEntry, translate.EndpointModeInline} {
		t.Run(mode, func(t *testing.T) {
			tr, err := translate.New(translate.Options{EndpointMode: mode, Labels: translate.LabelOptions{Mode: translate.LabelModeAll}, // every label: the adapter's mapping is what is checked
				Registries: []translate.RegistryOptions{{Name: "zk", Hosts: zkType.DefaultHosts, Namespace: "zk"}}})
			if err != nil {
				t.Fatal(err)
			}
			out := tr.Translate(model.Services)
			var buf bytes.Buffer
			for _, inv := range out.Invalid {
				fmt.Fprintf(&buf, "# invalid %s %s/%s (%s): %s: %s\n", inv.Collection, inv.Namespace, inv.Name, inv.Source, inv.Reason, inv.Detail)
			}
			for _, w := range out.Warnings {
				fmt.Fprintf(&buf, "# warning %s %s/%s (%s): %s: %s\n", w.Collection, w.Namespace, w.Name, w.Source, w.Reason, w.Detail)
			}
			if err := bridge.Render(&buf, bridge.AllResources(out, nil), bridge.RenderOptions{Format: "yaml"}); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, filepath.Join("testdata", "istio-"+mode+".golden.yaml"), buf.Bytes())
		})
	}
}
