package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// TestReloadRacingRuleReload: configuration reloads (alternating a translate option, so each one
// makes a new translator and producer list) run while rule-file reloads and registry events run. The rules' resources
// are never withdrawn, not even for one push (the rules engine following a translate producer
// that a concurrent push does not run), and afterwards the last configuration's translate options
// are served (a rule-file reload pushing the producer list it read before a reload replaced it
// brought the old translator back).
func TestReloadRacingRuleReload(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "lanes.yaml"), []byte(fmt.Sprintf(laneRule, "orders-lanes", "orders.*", "x-lane")), 0o600); err != nil {
		t.Fatal(err)
	}
	services := writeServices(t, dir, "services.yaml", "orders", "10.2.0.1")
	cfgs := make([]*config.Config, 2)
	for i, mode := range []string{"none", "istio"} {
		c, err := config.Parse([]byte(fmt.Sprintf("debounce: {quiet: 10ms}\ntranslate: {workloadTLSMode: %s}\nregistries:\n  - {name: shop, type: file, file: {path: %s}}\nrules: {files: [%s]}\n", mode, services, rulesDir)))
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i] = c
	}
	p, err := pipeline.New(cfgs[0], pipeline.Options{RulesPollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "the rules' VirtualService served", func() error {
		for _, r := range p.Bridge().Output().Served() {
			if r.Collection == istio.CollectionVirtualService {
				return nil
			}
		}
		return fmt.Errorf("no VirtualService served")
	})

	const reloads = 100
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(3)
	go func() { // registry events: the merge loop pushes meanwhile
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			writeServices(t, dir, "services.yaml", "orders", fmt.Sprintf("10.2.0.%d", 1+i%2))
		}
	}()
	go func() {
		defer wg.Done()
		defer close(stop)
		for i := 1; i <= reloads; i++ {
			if _, err := p.Reload(ctx, cfgs[i%2]); err != nil {
				t.Errorf("reload %d: %v", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.ReloadRules(); err != nil {
				t.Errorf("rule reload: %v", err)
				return
			}
		}
	}()
	wg.Wait()

	for _, v := range p.History().Find(history.Query{Kind: "VirtualService", Limit: 1000}) {
		if v.Change == "deleted" {
			t.Errorf("the rules' VirtualService %s/%s was withdrawn by a push (%s)", v.Namespace, v.Name, v.CauseText)
		}
	}
	want := cfgs[reloads%2].Translate.WorkloadTLSMode
	for _, r := range p.Bridge().Output().Resources[istio.CollectionServiceEntry] {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range spec.(*networking.ServiceEntry).GetEndpoints() {
			got := ep.GetLabels()["security.istio.io/tlsMode"]
			if want == "none" && got != "" || want != "none" && got != want {
				t.Errorf("%s endpoint tlsMode %q after the last reload set workloadTLSMode %s (an older translator served)", r.Name, got, want)
			}
		}
	}
}
