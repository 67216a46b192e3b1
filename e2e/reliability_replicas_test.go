package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// TestReplicasIdentical is issue 17's "two replicas": two bridges with the same configuration
// serve byte-identical resources with identical versions, so Istiod moved from one to the other
// sees no change. Istiod reaches replica A through a TCP proxy (as it would a Service's virtual
// IP); A is killed (SIGKILL) and the proxy sends new connections to B. Asserted: /debug/resources
// (which carries each resource's version) is byte-identical on both replicas; Istiod reconnects to
// B and ACKs every type; its counters move by exactly what one marker change made afterwards
// costs (calibrated before the move, as TestBridgeRestartStable does), so the move itself caused
// no config update and no push; its config store equals B's resources.
func TestReplicasIdentical(t *testing.T) {
	t.Parallel()
	const ns = "replicas"
	marked := func(w int) string {
		return churnServices(1) + fmt.Sprintf("  - name: replica-marker\n    instances:\n      - address: 127.0.51.1\n        ports: {http: 8080}\n        weight: %d\n", w)
	}
	services := writeFile(t, t.TempDir(), "services.yaml", marked(100))
	suite.Build(t, bridgePackage)
	suite.Cluster(t)
	cfg := fileRegistryConfig(ns, services, "")
	a, b := startBridge(t, cfg), startBridge(t, cfg)
	identical := func() error {
		ra, rb := bridgeAdmin(t, a, "/debug/resources"), bridgeAdmin(t, b, "/debug/resources")
		if !bytes.Equal(ra, rb) {
			return fmt.Errorf("the replicas' /debug/resources differ:\n--- A\n%s\n--- B\n%s", ra, rb)
		}
		if !bytes.Contains(ra, []byte("resourceVersion:")) || !bytes.Contains(ra, []byte("replica-marker.file")) {
			return fmt.Errorf("/debug/resources shows no versions or not the services:\n%s", ra)
		}
		return nil
	}
	servers.WaitFor(t, 10*time.Second, "the replicas to serve identical resources and versions", identical)

	aKilled := false
	proxy := servers.StartProxy(t, a.MCPAddr)
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{{Address: "xds://" + proxy.Addr()}}})
	// synced waits for both replicas to serve the marker at weight w and Istiod to hold B's state.
	synced := func(what string, w int) {
		t.Helper()
		servers.WaitFor(t, 20*time.Second, what, func() error {
			for _, r := range []*servers.Bridge{a, b} {
				if r == a && aKilled {
					continue
				}
				if got := markerWeight(t, r, ns); got != fmt.Sprint(w) {
					return fmt.Errorf("a replica serves the marker at weight %s, want %d", got, w)
				}
			}
			return istiodMatchesBridge(t, cp.Istiod, b, ns)
		})
	}
	synced("Istiod to hold the replicas' state", 100)
	// A connected sidecar makes Istiod push, so its push counters take part.
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	view.WaitClusterEndpoints(t, outboundCluster("replica-marker.file", 8080, ""), []string{"127.0.51.1:8080"}, 20*time.Second)
	observe := func() map[string]float64 {
		text := istiodMetrics(t, cp.Istiod)
		m := map[string]float64{}
		for _, name := range istiodUpdateMetrics {
			for k, v := range metricByLabel(text, name, "type") {
				m[name+"{type="+k+"}"] = v
			}
		}
		return m
	}
	delta := func(before, after map[string]float64) map[string]float64 {
		d := map[string]float64{}
		for k, v := range after {
			if v != before[k] {
				d[k] = v - before[k]
			}
		}
		return d
	}
	// Calibration: what one marker change costs (the first warms up).
	replaceFile(t, services, marked(50))
	synced("calibration: weight 50", 50)
	before := restingCounters(t, observe) // the previous change's push counted
	replaceFile(t, services, marked(100))
	synced("calibration: weight back to 100", 100)
	// Istiod counts a change once it is in its store; the push it triggers may come a debounce
	// later: wait until the counters rest.
	oneChange := restingCounters(t, observe)
	oneChange = delta(before, oneChange)
	if len(oneChange) == 0 {
		t.Fatal("a weight change moved none of Istiod's update counters: they cannot show anything")
	}
	if err := identical(); err != nil {
		t.Fatal(err)
	}

	before = restingCounters(t, observe)
	movedAt := time.Now()
	a.Stop(0) // SIGKILL: the replica dies, its connections with it
	aKilled = true
	proxy.SwitchTo(b.MCPAddr)
	servers.WaitFor(t, 20*time.Second, "Istiod to reconnect to replica B and ACK everything", func() error {
		return bridgeClientSynced(b, movedAt)
	})
	moved := time.Since(movedAt)
	replaceFile(t, services, marked(50))
	synced("the marker change after the move", 50)
	after := restingCounters(t, observe)
	if d := delta(before, after); !maps.Equal(d, oneChange) {
		t.Errorf("the move to replica B + one change moved Istiod's counters by %v; one change alone moves them by %v", d, oneChange)
	}
	t.Logf("measure: replica A killed -> Istiod connected to B and ACKed everything %v; counters across the move + marker %v (one change: %v)",
		moved.Round(time.Millisecond), delta(before, after), oneChange)
}

// markerWeight is the weight of the replica-marker endpoint the bridge serves.
func markerWeight(t *testing.T, b *servers.Bridge, ns string) string {
	for _, se := range inNamespace(bridgeResources(t, b, "ServiceEntry"), ns) {
		if slices.Contains(se.hosts(), "replica-marker.file") {
			if eps, ok := se.Spec["endpoints"].([]any); ok && len(eps) == 1 {
				if ep, ok := eps[0].(map[string]any); ok {
					if w, ok := ep["weight"]; ok {
						return fmt.Sprint(w)
					}
					return "unset"
				}
			}
		}
	}
	return "none"
}

// restingCounters reads observe until two reads 500 ms apart agree (Istiod's debounce is 100 ms).
func restingCounters(t *testing.T, observe func() map[string]float64) map[string]float64 {
	t.Helper()
	prev := observe()
	var cur map[string]float64
	servers.WaitFor(t, 10*time.Second, "Istiod's counters to rest", func() error {
		time.Sleep(500 * time.Millisecond)
		cur = observe()
		if !maps.Equal(cur, prev) {
			prev = cur
			return fmt.Errorf("still moving")
		}
		return nil
	})
	return cur
}
