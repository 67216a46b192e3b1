package nacos_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
	"github.com/mcp-bridge/mcp-bridge/translate"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

// TestEstateResources renders what the adapter reported for the estate registered in Polaris
// (testdata/estate.json, itself checked against the real server by TestPolarisEstate) through
// the real pipeline (pipeline.Render: merge, bridge with translate) with the Nacos type's
// defaults, and compares every resource with its spec with testdata/estate-resources.json
// (regenerate with -update and review the diff).
func TestEstateResources(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "estate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var services []*registry.Service
	if err := json.Unmarshal(raw, &services); err != nil {
		t.Fatal(err)
	}
	// The model must read back as it was written, or the resources would be of something else.
	if again := testkit.MustJSON(t, services); string(again) != string(raw) {
		t.Fatalf("testdata/estate.json does not round-trip through registry.Service:\n%s", again)
	}
	cfg := &config.Config{Registries: []config.Registry{{Name: "nacos", Type: "nacos", Config: &nacos.Config{}}}}
	cfg.Translate.Registries = cfg.TranslateRegistries()
	// Every registry label, as before lean labels: this test checks the adapter's mapping of the
	// registry's data; which labels routing keeps is translate's (its own tests).
	cfg.Translate.Labels.Mode = translate.LabelModeAll
	out, err := pipeline.Render(context.Background(), cfg, pipeline.Options{
		NewAdapter: func(config.Registry, registry.Options) (registry.Adapter, error) { return replay(services), nil },
	}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rendered := testkit.Resources(t, out.Output.Resources, out.Output.Invalid)
	golden.Compare(t, filepath.Join("testdata", "estate-resources.json"), testkit.MustJSON(t, rendered))
}

// replay is an adapter that reports a fixed set of services once and then holds them.
type replay []*registry.Service

func (r replay) Run(ctx context.Context, sink registry.Sink) error {
	sink.Replace(r)
	<-ctx.Done()
	return nil
}
