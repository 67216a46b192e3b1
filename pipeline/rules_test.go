package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

const laneRule = `apiVersion: rules.mcp-bridge.io/v1alpha1
kind: TrafficRule
metadata: {name: %s}
spec:
  selector: {hosts: [%q]}
  lanes: {header: %s, mode: strict}
`

// TestRuleFilesHotReload: in a running pipeline, a new rule file and a changed one are applied
// without a restart (fsnotify on the directory; the poll is set long so it cannot be what saw
// them); a broken one is rejected with file, line and reason, and the last good rules keep
// running.
func TestRuleFilesHotReload(t *testing.T) {
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	services := writeServices(t, dir, "services.yaml", "orders", "10.2.0.1")
	cfg, err := config.Parse([]byte(fmt.Sprintf("debounce: {quiet: 10ms}\nregistries:\n  - {name: shop, type: file, file: {path: %s}}\nrules: {files: [%s]}\n", services, rulesDir)))
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

	header := func() (string, error) {
		for _, r := range p.Bridge().Output().Served() {
			if r.Collection != istio.CollectionVirtualService {
				continue
			}
			spec, err := r.DecodeSpec()
			if err != nil {
				return "", err
			}
			return fmt.Sprint(spec), nil
		}
		return "", fmt.Errorf("no VirtualService served")
	}
	write := func(name, content string) {
		t.Helper()
		tmp := filepath.Join(rulesDir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(rulesDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	wantHeader := func(h string) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, "a VirtualService routing on "+h, func() error {
			s, err := header()
			if err != nil {
				return err
			}
			if !strings.Contains(s, `"`+h+`"`) {
				return fmt.Errorf("served VirtualService: %s", s)
			}
			return nil
		})
	}
	// A new file.
	write("lanes.yaml", fmt.Sprintf(laneRule, "orders-lanes", "orders.*", "x-lane"))
	wantHeader("x-lane")
	// The same file changed.
	write("lanes.yaml", fmt.Sprintf(laneRule, "orders-lanes", "orders.*", "x-env"))
	wantHeader("x-env")
	// A broken file (unknown field on line 6): rejected, the last good rules keep running.
	write("broken.yaml", fmt.Sprintf(laneRule, "other", "x.*", "x-other")+"  bogus: 1\n")
	testkit.WaitFor(t, 10*time.Second, "the broken rule file reported", func() error {
		st := fmt.Sprintf("%+v", p.RulesStatus(""))
		if !strings.Contains(st, "broken.yaml: line 7: unknown field \"bogus\"") {
			return fmt.Errorf("status: %s", st)
		}
		return nil
	})
	wantHeader("x-env")
	if st := p.Rules().Status(""); len(st.Rules) != 1 || st.Rules[0].Name != "orders-lanes" {
		t.Errorf("rules after the broken file: %+v", st.Rules)
	}
}
