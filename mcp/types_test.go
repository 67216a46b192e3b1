package mcp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestCollectionOfIstioTypeURLs: every type Istiod subscribes to, in every version it uses,
// maps to its own collection, so each is answered from what Set gave that kind.
func TestCollectionOfIstioTypeURLs(t *testing.T) {
	for _, minor := range []int{22, 23, 24, 29, 31} {
		seen := map[string]bool{}
		for _, u := range istio.PilotTypeURLs(minor) {
			c := CollectionOf(u)
			if seen[c] || !strings.Contains(c, ".istio.io/") || strings.Count(c, "/") != 1 {
				t.Errorf("1.%d: %s maps to %s (duplicate or malformed)", minor, u, c)
			}
			seen[c] = true
		}
	}
}

func TestCollectionOf(t *testing.T) {
	cases := map[string]string{
		"networking.istio.io/v1alpha3/ServiceEntry":           istio.CollectionServiceEntry,
		"networking.istio.io/v1/ServiceEntry":                 istio.CollectionServiceEntry,
		"networking.istio.io/v1beta1/ServiceEntry":            istio.CollectionServiceEntry,
		"networking.istio.io/ServiceEntry":                    istio.CollectionServiceEntry,
		"extensions.istio.io/v1alpha1/TrafficExtension":       istio.CollectionTrafficExtension,
		istio.MeshConfigTypeURL:                               istio.CollectionMeshConfig,
		"type.googleapis.com/envoy.config.cluster.v3.Cluster": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
		"a/notaversion/Kind":                                  "a/notaversion/Kind",
		"a/v1/b/c":                                            "a/v1/b/c",
		"/v1/Kind":                                            "/v1/Kind",
		"":                                                    "",
	}
	for in, want := range cases {
		if got := CollectionOf(in); got != want {
			t.Errorf("CollectionOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusAndMetrics: Clients() is JSON for /debug/clients and the same state is in metrics;
// two Servers with Names share a registry and stay independent.
func TestStatusAndMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	one := startServer(t, Options{Name: "shard-0", Metrics: reg}, nil)
	two := startServer(t, Options{Name: "shard-1", Metrics: reg}, nil)
	one.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	two.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "b", 1, 0), serviceEntry("default", "c", 1, 0)}})
	c := startAdsc(t, one.addr, []string{seV1, istio.MeshConfigTypeURL}, adscOptions{})
	c.next(5 * time.Second)
	c.next(5 * time.Second)
	testkit.WaitUntil(t, 5*time.Second, "both types synced", func() bool {
		cl := one.Clients()
		return len(cl) == 1 && len(cl[0].Types) == 2 && cl[0].Types[0].Synced && cl[0].Types[1].Synced
	})
	if len(two.Clients()) != 0 {
		t.Fatalf("the other server sees clients: %+v", two.Clients())
	}

	js, err := json.Marshal(one.Clients())
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(js, &decoded); err != nil || len(decoded) != 1 {
		t.Fatalf("Clients JSON %s: %v", js, err)
	}
	for _, k := range []string{"id", "peer", "protocol", "nodeId", "connectedSince", "types"} {
		if _, ok := decoded[0][k]; !ok {
			t.Errorf("Clients JSON lacks %q: %s", k, js)
		}
	}

	if got := testutil.ToFloat64(one.m.resources.WithLabelValues(istio.CollectionServiceEntry)); got != 1 {
		t.Errorf("shard-0 mcp_resources = %v, want 1", got)
	}
	if got := testutil.ToFloat64(two.m.resources.WithLabelValues(istio.CollectionServiceEntry)); got != 2 {
		t.Errorf("shard-1 mcp_resources = %v, want 2", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	found := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case f.GetName() == "mcp_bridge_mcp_client_synced" && labels["node_id"] == istiodNodeID && labels["server"] == "shard-0":
				found["synced:"+labels["type_url"]] = m.GetGauge().GetValue() == 1
			case f.GetName() == "mcp_bridge_mcp_clients" && labels["server"] == "shard-0":
				found["clients"] = m.GetGauge().GetValue() == 1
			case f.GetName() == "mcp_bridge_mcp_responses_total" && labels["server"] == "shard-0" && labels["collection"] == unsetCollection:
				found["unset"] = m.GetCounter().GetValue() == 1
			}
		}
	}
	for _, k := range []string{"synced:" + seV1, "synced:" + istio.MeshConfigTypeURL, "clients", "unset"} {
		if !found[k] {
			t.Errorf("metric %s missing or wrong (found %v)", k, found)
		}
	}
}
