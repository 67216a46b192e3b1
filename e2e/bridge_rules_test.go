package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// TestBridgeRulesCanary is issue 13's Istiod test for the canary kind, with real traffic: a rule
// (no static resource) makes the bridge generate the DestinationRule and VirtualService; the
// sidecar view of the real Istiod has the subset clusters, the header and modulo match route and
// the 90/10 split; real proxyless gRPC traffic follows them (1,000 calls split 90/10 within
// statistical bounds; x-canary: yes and user-id 120 reach canary, user-id 121 takes the split);
// a modulo-only canary on a second host sends user 120 to canary and 121 to stable, every call.
func TestBridgeRulesCanary(t *testing.T) {
	t.Parallel()
	backends := traffic.StartBackends(t, "127.0.43.1", "127.0.43.2")
	v1, v2 := backends[0], backends[1]
	host, port := "echo-rules.file", v1.Port
	dir := t.TempDir()
	// echo-mod serves the same backends under another host, for a modulo-only canary.
	services := writeFile(t, dir, "services.yaml", echoServices("echo-rules", v1, v2)+
		strings.TrimPrefix(echoServices("echo-mod", v1, v2), "services:\n"))
	b := startBridge(t, fileRegistryConfig("rules", services, `rules:
  inline:
    - name: echo-modulo
      selector: {hosts: [echo-mod.file]}
      canary:
        stable: {version: v1}
        canary: {version: v2}
        weight: 0
        match:
          - modulo: "user-id % 10 == 0"
    - name: echo-canary
      selector: {hosts: [echo-rules.file]}
      canary:
        stable: {version: v1}
        canary: {version: v2}
        weight: 10
        match:
          - headers: {x-canary: {exact: "yes"}}
          - modulo: "user-id % 10 == 0"
`))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	stable, canary := outboundCluster(host, port, "stable"), outboundCluster(host, port, "canary")
	wantEndpoints(t, view, "the generated subsets", map[string][]xdsview.Endpoint{
		stable: {{Address: v1.Addr}},
		canary: {{Address: v2.Addr}},
	}, 30*time.Second)
	// Istio makes one Envoy route per match of an HTTP route: two canary routes, then the split.
	waitRoute(t, view, port, host, 0, map[string]uint32{canary: 1})
	waitRoute(t, view, port, host, 1, map[string]uint32{canary: 1})
	waitRoute(t, view, port, host, 2, map[string]uint32{stable: 90, canary: 10})
	s := view.Snapshot()
	if vh := s.VirtualHost(fmt.Sprint(port), host); vh != nil {
		ms := vh.GetRoutes()[0].GetMatch().GetHeaders()
		if len(ms) != 1 || ms[0].GetName() != "x-canary" || ms[0].GetStringMatch().GetExact() != "yes" {
			t.Errorf("route 0's first match: headers %v, want x-canary exact yes", ms)
		}
	}

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	checkSplit9010(t, client, host, port, v1, v2)
	target := traffic.Target(host, port)
	for _, c := range []struct {
		meta map[string]string
		want *traffic.Backend
	}{
		{map[string]string{"x-canary": "yes"}, v2},
		{map[string]string{"user-id": "120"}, v2},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := client.Do(ctx, traffic.Call{Target: target, N: 50, Metadata: c.meta})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{c.want.Addr: 50}; !maps.Equal(res.Counts, want) || res.Failed() > 0 {
			t.Errorf("metadata %v: answered by %v, errors %v; want all 50 by %s", c.meta, res.Counts, res.Errors, c.want.Addr)
		}
	}
	// user-id 121 (121 % 10 = 1) does not match: it takes the 90/10 split like any request, so
	// stable answers most (Binomial(50, 0.9): fewer than 30 is a 10^-8 event; all 50 by canary
	// would mean the match were wrong).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := client.Do(ctx, traffic.Call{Target: target, N: 50, Metadata: map[string]string{"user-id": "121"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[v1.Addr] < 30 || res.Failed() > 0 {
		t.Errorf("user-id 121: answered by %v, errors %v; want most by stable %s", res.Counts, res.Errors, v1.Addr)
	}

	// The modulo rule alone (no split): user 120 goes to canary, user 121 to stable, every call.
	modTarget := traffic.Target("echo-mod.file", port)
	for _, c := range []struct {
		user string
		want *traffic.Backend
	}{{"120", v2}, {"121", v1}, {"7", v1}, {"1000", v2}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := client.Do(ctx, traffic.Call{Target: modTarget, N: 50, Metadata: map[string]string{"user-id": c.user}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{c.want.Addr: 50}; !maps.Equal(res.Counts, want) || res.Failed() > 0 {
			t.Errorf("echo-mod, user-id %s: answered by %v, errors %v; want all 50 by %s", c.user, res.Counts, res.Errors, c.want.Addr)
		}
	}
}
