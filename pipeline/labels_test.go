package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// TestLabelKeysFollowRulesAndStatic: in a running pipeline with the default label mode, an
// endpoint carries a key outside the allowlist when a static DestinationRule's subset selects it
// (rack), gains one when a rule file that selects it appears later (cell: the rule reload
// re-renders the service), and never carries noise (anyhost); /debug/config and the metrics
// say what was kept and dropped.
func TestLabelKeysFollowRulesAndStatic(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte("services:\n  - name: orders\n    ports: [{name: http, protocol: http}]\n    instances:\n"+
		"      - {address: 10.3.0.1, ports: {http: 8080}, labels: {cell: c1, rack: r1, anyhost: \"true\"}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(dir, "static.yaml")
	if err := os.WriteFile(static, []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: orders-racks, namespace: shop}\n"+
		"spec:\n  host: orders.shop\n  subsets:\n  - {name: r1, labels: {rack: r1}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("debounce: {quiet: 10ms}\nregistries:\n  - {name: shop, type: file, file: {path: %s}}\n"+
		"staticResources: [%s]\nrules: {files: [%s]}\n", services, static, rulesDir)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{RulesPollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	labels := func() (map[string]string, error) {
		for _, r := range p.Bridge().Output().Served() {
			if r.Collection != istio.CollectionServiceEntry {
				continue
			}
			spec, err := r.DecodeSpec()
			if err != nil {
				return nil, err
			}
			if eps := spec.(*networking.ServiceEntry).GetEndpoints(); len(eps) == 1 {
				return eps[0].GetLabels(), nil
			}
		}
		return nil, fmt.Errorf("no ServiceEntry with one endpoint served")
	}
	want := func(what string, has, hasNot []string) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, what, func() error {
			l, err := labels()
			if err != nil {
				return err
			}
			for _, k := range has {
				if _, ok := l[k]; !ok {
					return fmt.Errorf("endpoint labels %v lack %s", l, k)
				}
			}
			for _, k := range hasNot {
				if _, ok := l[k]; ok {
					return fmt.Errorf("endpoint labels %v have %s", l, k)
				}
			}
			return nil
		})
	}
	want("rack kept for the static subset, cell and anyhost dropped", []string{"rack"}, []string{"cell", "anyhost"})

	rule := "apiVersion: rules.mcp-bridge.io/v1alpha1\nkind: TrafficRule\nmetadata: {name: cells}\nspec:\n  selector: {hosts: [\"orders.*\"]}\n  subsets: {labels: [cell]}\n"
	tmp := filepath.Join(rulesDir, ".cells.tmp")
	if err := os.WriteFile(tmp, []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(rulesDir, "cells.yaml")); err != nil {
		t.Fatal(err)
	}
	want("cell kept once a rule selects by it", []string{"rack", "cell"}, []string{"anyhost"})

	st := p.ConfigStatus().Labels
	if st.Mode != translate.LabelModeRouting || !slices.Equal(st.Routed, []string{"cell", "rack"}) {
		t.Errorf("/debug/config labels: %+v", st)
	}
	mfs, err := p.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "mcp_bridge_translate_labels_dropped" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if len(got) != 1 || got["anyhost"] != 1 {
		t.Errorf("mcp_bridge_translate_labels_dropped: %v, want {anyhost: 1}", got)
	}
}
