package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// inventoryServices is the second bridge's services file: one HTTP service, "inventory.file".
func inventoryServices(ips ...string) string {
	s := "services:\n  - name: inventory\n    instances:\n"
	for _, ip := range ips {
		s += fmt.Sprintf("      - {address: %s, ports: {http: 9090}}\n", ip)
	}
	return s
}

// TestBridgeTwoSources is issue 3 test 8: two bridges with different registries, as two xds://
// configSources of one Istiod, are merged: the sidecar view has both bridges' services, a
// DestinationRule from the second bridge applies to a service of the first, and a change in one
// bridge's registry reaches Istiod without touching what the other serves.
func TestBridgeTwoSources(t *testing.T) {
	t.Parallel()
	first := startBridge(t, "") // the embedded example, registry "example"
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", inventoryServices("127.0.50.1", "127.0.50.2"))
	// Subsets of the first bridge's Dubbo service by its instances' dubbo.tag (stable, gray), in
	// that service's namespace: Istio looks a DestinationRule up in the client's namespace, the
	// service's and the root namespace only.
	rules := writeFile(t, dir, "rules.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greetings-tags, namespace: example}
spec:
  host: %s
  subsets:
  - {name: stable, labels: {dubbo.tag: stable}}
  - {name: gray, labels: {dubbo.tag: gray}}
`, greetingsHost))
	second := startBridge(t, fileRegistryConfig("second", services, fmt.Sprintf("staticResources: [%q]\n", rules)))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{first.ConfigSource(), second.ConfigSource()}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})

	inventory := outboundCluster("inventory.file", 9090, "")
	want := exampleEndpoints()
	want[inventory] = []xdsview.Endpoint{{Address: "127.0.50.1:9090"}, {Address: "127.0.50.2:9090"}}
	want[outboundCluster(greetingsHost, dubboPort, "stable")] = []xdsview.Endpoint{{Address: "127.0.10.1:20880"}, {Address: "127.0.10.2:20880"}}
	want[outboundCluster(greetingsHost, dubboPort, "gray")] = []xdsview.Endpoint{{Address: "127.0.10.3:20880"}}
	wantEndpoints(t, view, "both bridges' services and the cross-bridge subsets", want, 20*time.Second)

	// Istiod's store holds each bridge's resources.
	counts := map[string]int{}
	for _, o := range configz(t, cp.Istiod) {
		counts[o.Kind+" "+o.Metadata.Namespace]++
	}
	// The first bridge's example rules generate DestinationRules of their own in "example"; the
	// second bridge adds its static one there.
	generated := strings.Count(string(bridgeAdmin(t, first, "/debug/resources?kind=DestinationRule")), "kind: DestinationRule")
	for id, n := range map[string]int{"ServiceEntry example": 4, "ServiceEntry second": 1, "DestinationRule example": generated + 1} {
		if counts[id] != n {
			t.Errorf("Istiod's store has %d %s, want %d (all: %v)", counts[id], id, n, counts)
		}
	}

	changedAt := time.Now()
	replaceFile(t, services, inventoryServices("127.0.50.1", "127.0.50.2", "127.0.50.3"))
	want[inventory] = append(want[inventory], xdsview.Endpoint{Address: "127.0.50.3:9090"})
	wantEndpoints(t, view, "the second bridge's change", want, 10*time.Second)
	s := view.Snapshot()
	for c := range want {
		if at := s.Changed[xdsview.EDS][c]; c != inventory && at.After(changedAt) {
			t.Errorf("%s changed with the second bridge's registry", c)
		}
	}
}
