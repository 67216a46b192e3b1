package zookeeper

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	mcpbridge "github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/rules"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Dubbo's documented rule shapes (apache/dubbo-website traffic pages), for the service of
// liveTriURL: a v2.7 tag rule by address and a v3.0 condition rule by method.
const (
	govTagYAML = `force: false
runtime: true
enabled: true
key: live-provider
tags:
  - name: gray
    addresses: ["10.2.0.1:50051", "10.2.0.2:50051"]
`
	govCondYAML = `configVersion: v3.0
scope: service
force: false
runtime: true
enabled: true
key: com.example.Live
conditions:
  - method=hello => region=eu
`
)

func liveTriURL(ip, extra string) string {
	return strings.Replace(liveURL(ip, 50051, extra), "dubbo://", "tri://", 1)
}

// policyWorld is the bridge's producers after the merger: governance, translate, rules engine.
type policyWorld struct {
	gov, tp, rp mcpbridge.Producer
}

func newPolicyWorld(t *testing.T) *policyWorld {
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "zk", Namespace: "ns"}}})
	if err != nil {
		t.Fatal(err)
	}
	rp := rules.NewProducer(rules.New(rules.Options{Host: tr.Host}))
	rp.SetGovernanceMode(rules.GovernanceApply)
	tp := mcpbridge.TranslateWith(tr, rp.Prepare)
	rp.Follow(tp)
	return &policyWorld{gov: rp.Governance(), tp: tp, rp: rp}
}

// routes returns the VirtualService's HTTP route names of the Live service, "" without one.
func (w *policyWorld) routes(t *testing.T, snap *merge.Snapshot) string {
	w.gov.Produce(snap)
	w.tp.Produce(snap)
	vs := w.rp.Produce(snap).Resources[istio.CollectionVirtualService]
	if len(vs) > 1 {
		t.Fatalf("%d VirtualServices, want at most the Live service's", len(vs))
	}
	if len(vs) == 0 {
		return ""
	}
	spec, err := vs[0].DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range spec.(*networking.VirtualService).GetHttp() {
		names = append(names, h.GetName())
	}
	return strings.Join(names, ",")
}

// TestGovernancePolicyFromZooKeeper writes Dubbo rules to a real ZooKeeper and follows them into
// Istio policy: the tag rule's addresses become the gray subset and route, the condition rule a
// method route; ZooKeeper down keeps the policy; a deleted rule takes its routes away.
func TestGovernancePolicyFromZooKeeper(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	for i, extra := range []string{"", "", "region=eu"} {
		zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Live", liveTriURL(fmt.Sprintf("10.2.0.%d", i+1), extra)), nil, false)
	}
	zktest.Create(t, admin, ruleRoot+"/live-provider.tag-router", []byte(govTagYAML), false)
	zktest.Create(t, admin, ruleRoot+"/com.example.Live.condition-router", []byte(govCondYAML), false)
	cfg := Config{Servers: []string{z.Addr()}, ResyncInterval: -1, ReconnectBackoff: 100 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond}
	b := startBridge(t, cfg, filepath.Join(t.TempDir(), "state.json.gz"))
	defer b.stop(t)
	w := newPolicyWorld(t)

	const both = "tag-gray,tag-forced-request,cond-0,default"
	wantRoutes := func(want string) func(*merge.Snapshot) error {
		return func(s *merge.Snapshot) error {
			if got := w.routes(t, s); got != want {
				return fmt.Errorf("routes %q, want %q", got, want)
			}
			return nil
		}
	}
	b.waitSnapshot(t, "tag and condition routes", wantRoutes(both))

	z.Stop()
	b.waitStatus(t, "the registry failed", func(s merge.RegistryStatus) error {
		if s.Connected {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	if got := w.routes(t, b.last()); got != both {
		t.Fatalf("routes while ZooKeeper is down: %q, want %q (no traffic shift)", got, both)
	}

	z.Restart()
	admin2 := zktest.Session(t, z.Addr())
	zktest.Delete(t, admin2, ruleRoot+"/live-provider.tag-router")
	b.waitSnapshot(t, "the tag routes gone", wantRoutes("cond-0,default"))
	zktest.Delete(t, admin2, ruleRoot+"/com.example.Live.condition-router")
	b.waitSnapshot(t, "no policy left", wantRoutes(""))
}
