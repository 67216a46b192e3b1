package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// rulesAdapter stands for a registry that holds governance rules (ZooKeeper's are tested against
// the real server in registry/zookeeper); here only what the status page makes of them matters.
type rulesAdapter struct{ rules []*registry.Rule }

func (a rulesAdapter) Run(ctx context.Context, sink registry.Sink) error {
	sink.ReplaceRules(a.rules)
	sink.Replace(nil)
	<-ctx.Done()
	return nil
}

// TestOverviewListsUntranslatableGovernanceRules: a registry rule Istio cannot express (a
// condition on a method argument) is listed on the status page with the clause and the reason.
func TestOverviewListsUntranslatableGovernanceRules(t *testing.T) {
	rule, err := dubbo.ParseRule("org.example.Greeter::.condition-router", "/dubbo/config/dubbo/org.example.Greeter::.condition-router", []byte(`
configVersion: v3.0
scope: service
key: org.example.Greeter
enabled: true
conditions:
  - "arguments[0] = gray => region = eu"
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	p, err := pipeline.New(cfg, pipeline.Options{NewAdapter: func(config.Registry, registry.Options) (registry.Adapter, error) {
		return rulesAdapter{rules: []*registry.Rule{rule}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		ov := overview(p)
		if len(ov.Rules) > 0 {
			r := ov.Rules[0]
			if !strings.Contains(r.Resource, "org.example.Greeter") || !strings.Contains(r.Detail, "conditions[0]: arguments[0]") || r.Reason != "untranslatable" {
				t.Errorf("untranslatable rule shown as %+v, want the rule's key, the arguments clause and a reason", r)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status page lists no untranslatable governance rule; governance status: %+v", p.Governance(""))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
