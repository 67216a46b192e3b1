package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// TestBridgeLeanLabelsKeepRoutedKeys is issue 15's "a label a rule or subset needs is never
// dropped", through a real Istiod with real traffic. The instances carry "cell" (not in the
// routing mode's allowlist) and Dubbo noise ("anyhost", "side"); the default label mode
// (routing) drops the noise, but a canary rule selects by cell, so cell stays: the bridge's
// ServiceEntry has it and not the noise, /debug/config counts what was dropped, Istiod's subset
// clusters have the right endpoint each, and proxyless gRPC calls route by it (x-cell: c2 to the
// c2 instance, the rest to c1, every call).
func TestBridgeLeanLabelsKeepRoutedKeys(t *testing.T) {
	t.Parallel()
	backends := traffic.StartBackends(t, "127.0.44.1", "127.0.44.2")
	c1, c2 := backends[0], backends[1]
	host, port := "echo-lean.file", c1.Port
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", fmt.Sprintf(`services:
  - name: echo-lean
    ports: [{name: grpc, protocol: grpc}]
    instances:
      - {address: %s, ports: {grpc: %d}, labels: {cell: c1, anyhost: "true", side: provider}}
      - {address: %s, ports: {grpc: %d}, labels: {cell: c2, anyhost: "true", side: provider}}
`, c1.IP, c1.Port, c2.IP, c2.Port))
	b := startBridge(t, fileRegistryConfig("lean", services, `rules:
  inline:
    - name: echo-cells
      selector: {hosts: [echo-lean.file]}
      canary:
        stable: {cell: c1}
        canary: {cell: c2}
        weight: 0
        match:
          - headers: {x-cell: {exact: c2}}
`))

	// The bridge's side: cell kept because the rule selects by it, the noise dropped.
	ses := bridgeResources(t, b, "ServiceEntry")
	if len(ses) != 1 {
		t.Fatalf("%d ServiceEntries served, want 1", len(ses))
	}
	eps, _ := ses[0].Spec["endpoints"].([]any)
	if len(eps) != 2 {
		t.Fatalf("ServiceEntry endpoints %v", ses[0].Spec["endpoints"])
	}
	for _, e := range eps {
		labels, _ := e.(map[string]any)["labels"].(map[string]any)
		if _, ok := labels["cell"]; !ok {
			t.Errorf("endpoint %v lacks cell, which the rule selects by", e)
		}
		for _, k := range []string{"anyhost", "side"} {
			if _, ok := labels[k]; ok {
				t.Errorf("endpoint %v carries %s, which routing mode drops", e, k)
			}
		}
	}
	var status struct {
		Labels struct {
			Mode    string   `json:"mode"`
			Routed  []string `json:"routed"`
			Dropped []struct {
				Key   string `json:"key"`
				Count int    `json:"count"`
			} `json:"dropped"`
		} `json:"labels"`
	}
	if err := json.Unmarshal(bridgeAdmin(t, b, "/debug/config"), &status); err != nil {
		t.Fatal(err)
	}
	dropped := map[string]int{}
	for _, d := range status.Labels.Dropped {
		dropped[d.Key] = d.Count
	}
	if status.Labels.Mode != "routing" || fmt.Sprint(status.Labels.Routed) != "[cell]" || !maps.Equal(dropped, map[string]int{"anyhost": 2, "side": 2}) {
		t.Errorf("/debug/config labels: %+v", status.Labels)
	}

	// Istiod's side: each subset cluster has its instance.
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	stable, canary := outboundCluster(host, port, "stable"), outboundCluster(host, port, "canary")
	wantEndpoints(t, view, "the subsets selecting by cell", map[string][]xdsview.Endpoint{
		stable: {{Address: c1.Addr}},
		canary: {{Address: c2.Addr}},
	}, 30*time.Second)
	waitRoute(t, view, port, host, 0, map[string]uint32{canary: 1})

	// Real traffic routes by cell.
	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	target := traffic.Target(host, port)
	for _, c := range []struct {
		meta map[string]string
		want *traffic.Backend
	}{{map[string]string{"x-cell": "c2"}, c2}, {nil, c1}, {map[string]string{"x-cell": "c3"}, c1}} {
		got := callOnce(t, client, target, 50, c.meta)
		if want := map[string]int{c.want.Addr: 50}; !maps.Equal(got, want) {
			t.Errorf("metadata %v: answered by %v, want all 50 by %s", c.meta, got, c.want.Addr)
		}
	}
}
