package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// shardServices renders a services file of n HTTP services (shard-<i>.file) with two instances
// each; weight is the first instance's weight of service changed.
func shardServices(n, changed int, weight uint32) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range n {
		w := uint32(100)
		if i == changed {
			w = weight
		}
		fmt.Fprintf(&b, "  - name: shard-%d\n    instances:\n", i)
		fmt.Fprintf(&b, "      - {address: 127.0.40.%d, ports: {http: 8080}, weight: %d}\n", i+1, w)
		fmt.Fprintf(&b, "      - {address: 127.0.41.%d, ports: {http: 8080}, weight: 100}\n", i+1)
	}
	return b.String()
}

func shardExpected(n, changed int, weight uint32) map[string][]xdsview.Endpoint {
	want := map[string][]xdsview.Endpoint{}
	for i := range n {
		w := uint32(100)
		if i == changed {
			w = weight
		}
		want[outboundCluster(fmt.Sprintf("shard-%d.file", i), 8080, "")] = []xdsview.Endpoint{
			{Address: fmt.Sprintf("127.0.40.%d:8080", i+1), Weight: w}, {Address: fmt.Sprintf("127.0.41.%d:8080", i+1), Weight: 100}}
	}
	return want
}

// TestBridgeShards: a bridge with mcp.shards 3 and a real Istiod whose configSources list the
// three xds:// shards. The sidecar gets every service's cluster and endpoints; each shard serves
// a share of them and Istiod is a client of every shard (/debug/clients names the shard); a
// one-instance change is sent on exactly one shard (the others' sent bytes do not move) and
// reaches the sidecar's EDS.
func TestBridgeShards(t *testing.T) {
	t.Parallel()
	const shards, services = 3, 12
	services_ := writeFile(t, t.TempDir(), "services.yaml", shardServices(services, -1, 0))
	// mcp.shards in the config text: StartBridge runs every shard on a free port.
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage),
		Config: fileRegistryConfig("shards", services_, fmt.Sprintf("mcp: {shards: %d}\n", shards))})
	if len(b.ConfigSources()) != shards {
		t.Fatalf("%d config sources, want %d", len(b.ConfigSources()), shards)
	}
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: b.ConfigSources()})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	wantEndpoints(t, view, "every service's endpoints from 3 shards", shardExpected(services, -1, 0), 30*time.Second)

	// Every shard serves some of the services, none twice; Istiod is a client of each.
	text := bridgeMetrics(t, b)
	total := 0.0
	for i := range shards {
		n := metricSum(text, "mcp_bridge_mcp_resources", map[string]string{"server": fmt.Sprintf("shard-%d", i), "collection": "networking.istio.io/ServiceEntry"})
		if n == 0 {
			t.Errorf("shard %d serves no ServiceEntry of %d", i, services)
		}
		total += n
	}
	if total != services {
		t.Errorf("the shards serve %v ServiceEntries together, want %d (each service in exactly one shard)", total, services)
	}
	if gaps := metricSum(text, "mcp_bridge_mcp_clients_missing_shards", nil); gaps != 0 {
		t.Errorf("mcp_bridge_mcp_clients_missing_shards = %v with Istiod listing every shard, want 0", gaps)
	}
	var clients struct {
		Total   int `json:"total"`
		Clients []struct {
			Shard  string `json:"shard"`
			NodeID string `json:"nodeId"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(bridgeAdmin(t, b, "/debug/clients"), &clients); err != nil {
		t.Fatal(err)
	}
	var onShards []string
	for _, c := range clients.Clients {
		onShards = append(onShards, c.Shard)
	}
	slices.Sort(onShards)
	if !slices.Equal(slices.Compact(onShards), []string{"shard-0", "shard-1", "shard-2"}) {
		t.Errorf("/debug/clients: Istiod's clients are on shards %v, want every shard", onShards)
	}

	// One instance of one service changes: one shard sends, the others stay silent.
	sent := func() []float64 {
		text := bridgeMetrics(t, b)
		out := make([]float64, shards)
		for i := range out {
			out[i] = metricSum(text, "mcp_bridge_mcp_sent_bytes_total", map[string]string{"server": fmt.Sprintf("shard-%d", i)})
		}
		return out
	}
	before := sent()
	const changed, weight = 5, 37
	written := time.Now()
	replaceFile(t, services_, shardServices(services, changed, weight))
	seen := wantEndpoints(t, view, "the changed weight", shardExpected(services, changed, weight), changeBound+10*time.Second)
	t.Logf("one-instance change -> sidecar EDS in %v over 3 shards", seen.Sub(written).Round(time.Millisecond))
	// Istiod's ACK of the changed shard may still be on its way; nothing else may be sent.
	time.Sleep(500 * time.Millisecond)
	after := sent()
	var moved []int
	for i := range after {
		if after[i] != before[i] {
			moved = append(moved, i)
		}
	}
	if len(moved) != 1 {
		t.Errorf("sent bytes moved on shards %v (before %v, after %v), want exactly one", moved, before, after)
	}
}
