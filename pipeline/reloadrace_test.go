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
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
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
	testkit.WaitFor(t, 10*time.Second, "the rules' VirtualService served", func() error {
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

// TestReloadRejectedByRulesChangesNothing: a configuration whose rules the engine refuses (a rule
// file's rule and an inline rule of the same name, which only the engine sees together) is
// rejected whole: the translate option it also changes is not applied, so the merge layer's
// identities, the rules' host selection and the served resources stay those of the running
// configuration.
func TestReloadRejectedByRulesChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "lanes.yaml")
	if err := os.WriteFile(ruleFile, []byte(fmt.Sprintf(laneRule, "orders-lanes", "orders.file", "x-lane")), 0o600); err != nil {
		t.Fatal(err)
	}
	services := writeServices(t, dir, "services.yaml", "orders", "10.2.0.1")
	base := fmt.Sprintf("debounce: {quiet: 10ms}\nregistries:\n  - {name: shop, type: file, file: {path: %s}}\n", services)
	cfg, err := config.Parse([]byte(base + fmt.Sprintf("rules: {files: [%s]}\n", ruleFile)))
	if err != nil {
		t.Fatal(err)
	}
	renamed := fmt.Sprintf("debounce: {quiet: 10ms}\nregistries:\n  - {name: shop, type: file, hosts: {application: \"{{.Name}}.renamed\"}, file: {path: %s}}\n", services)
	bad, err := config.Parse([]byte(renamed +
		fmt.Sprintf("rules:\n  files: [%s]\n  inline:\n    - {name: orders-lanes, selector: {hosts: [\"orders.*\"]}, lanes: {header: x-other}}\n", ruleFile)))
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
	names := func() []string {
		var out []string
		if p.Bridge().Output() == nil {
			return nil
		}
		for _, r := range p.Bridge().Output().Resources[istio.CollectionServiceEntry] {
			out = append(out, r.Name)
		}
		return out
	}
	testkit.WaitFor(t, 10*time.Second, "the ServiceEntry served", func() error {
		if n := names(); len(n) != 1 {
			return fmt.Errorf("served %v", n)
		}
		return nil
	})
	before := names()
	plan, err := p.Reload(ctx, bad)
	if err == nil {
		t.Fatal("a configuration declaring rule orders-lanes twice was accepted")
	}
	t.Logf("rejected: %v (plan %+v)", err, plan)
	// A wrong translator would show at the next snapshot: make one.
	writeServices(t, dir, "services.yaml", "orders", "10.2.0.2")
	testkit.WaitFor(t, 10*time.Second, "the changed instance served", func() error {
		for _, r := range p.Bridge().Output().Resources[istio.CollectionServiceEntry] {
			if spec, err := r.DecodeSpec(); err == nil && len(spec.(*networking.ServiceEntry).GetEndpoints()) == 1 &&
				spec.(*networking.ServiceEntry).GetEndpoints()[0].GetAddress() == "10.2.0.2" {
				return nil
			}
		}
		return fmt.Errorf("served %v", p.Bridge().Output().Resources[istio.CollectionServiceEntry])
	})
	if got := names(); len(got) != 1 || got[0] != before[0] {
		t.Errorf("ServiceEntries after the rejected reload: %v, want %v (the rejected configuration's host naming applied)", got, before)
	}
	// The rule selects orders.file: with the rejected host naming the rules engine would see
	// orders.renamed and withdraw the VirtualService.
	vs := 0
	for _, r := range p.Bridge().Output().Served() {
		if r.Collection == istio.CollectionVirtualService {
			vs++
		}
	}
	if vs != 1 {
		t.Errorf("%d VirtualServices served after the rejected reload, want the rule's 1", vs)
	}
}
