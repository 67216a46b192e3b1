package mcp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestIstioTypeURLs(t *testing.T) {
	cases := []struct {
		minor     int
		n         int
		contains  []string
		notExists []string
	}{
		{minor: 22, n: 15, contains: []string{
			"core/v1alpha1/MeshConfig", "networking.istio.io/v1alpha3/ServiceEntry", "networking.istio.io/v1alpha3/WorkloadGroup",
			"networking.istio.io/v1beta1/ProxyConfig", "security.istio.io/v1beta1/AuthorizationPolicy",
			"telemetry.istio.io/v1alpha1/Telemetry", "extensions.istio.io/v1alpha1/WasmPlugin", "networking.istio.io/v1alpha3/EnvoyFilter"},
			notExists: []string{"networking.istio.io/v1/ServiceEntry", "extensions.istio.io/v1alpha1/TrafficExtension"}},
		{minor: 23, n: 15, contains: []string{"networking.istio.io/v1alpha3/Sidecar"}},
		{minor: 24, n: 15, contains: []string{
			"networking.istio.io/v1/ServiceEntry", "networking.istio.io/v1/WorkloadEntry", "security.istio.io/v1/PeerAuthentication",
			"telemetry.istio.io/v1/Telemetry", "networking.istio.io/v1alpha3/EnvoyFilter", "networking.istio.io/v1beta1/ProxyConfig"},
			notExists: []string{"networking.istio.io/v1alpha3/ServiceEntry"}},
		{minor: 29, n: 15, notExists: []string{"extensions.istio.io/v1alpha1/TrafficExtension"}},
		// 1.31: checked against istio.io/istio pkg/config/schema/collections Pilot (15 types) + MeshConfig.
		{minor: 31, n: 16, contains: []string{"extensions.istio.io/v1alpha1/TrafficExtension"}},
	}
	for _, tc := range cases {
		urls := IstioTypeURLs(tc.minor)
		if len(urls) != tc.n || urls[0] != MeshConfigTypeURL {
			t.Errorf("1.%d: %d URLs starting %s, want %d starting with MeshConfig", tc.minor, len(urls), urls[0], tc.n)
		}
		for _, u := range tc.contains {
			if !slices.Contains(urls, u) {
				t.Errorf("1.%d: missing %s", tc.minor, u)
			}
		}
		for _, u := range tc.notExists {
			if slices.Contains(urls, u) {
				t.Errorf("1.%d: unexpected %s", tc.minor, u)
			}
		}
		seen := map[string]bool{}
		for _, u := range urls[1:] {
			c := CollectionOf(u)
			if seen[c] || !strings.Contains(c, ".istio.io/") || strings.Count(c, "/") != 1 {
				t.Errorf("1.%d: %s maps to %s (duplicate or malformed)", tc.minor, u, c)
			}
			seen[c] = true
		}
	}
}

func TestCollectionOf(t *testing.T) {
	cases := map[string]string{
		"networking.istio.io/v1alpha3/ServiceEntry":           CollectionServiceEntry,
		"networking.istio.io/v1/ServiceEntry":                 CollectionServiceEntry,
		"networking.istio.io/v1beta1/ServiceEntry":            CollectionServiceEntry,
		"networking.istio.io/ServiceEntry":                    CollectionServiceEntry,
		"extensions.istio.io/v1alpha1/TrafficExtension":       CollectionTrafficExtension,
		MeshConfigTypeURL:                                     CollectionMeshConfig,
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
	one.Set(map[string][]*Resource{CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	two.Set(map[string][]*Resource{CollectionServiceEntry: {serviceEntry("default", "b", 1, 0), serviceEntry("default", "c", 1, 0)}})
	c := startAdsc(t, one.addr, []string{seV1, MeshConfigTypeURL}, adscOptions{})
	c.next(5 * time.Second)
	c.next(5 * time.Second)
	waitFor(t, 5*time.Second, "both types synced", func() bool {
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

	if got := testutil.ToFloat64(one.m.resources.WithLabelValues(CollectionServiceEntry)); got != 1 {
		t.Errorf("shard-0 mcp_resources = %v, want 1", got)
	}
	if got := testutil.ToFloat64(two.m.resources.WithLabelValues(CollectionServiceEntry)); got != 2 {
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
	for _, k := range []string{"synced:" + seV1, "synced:" + MeshConfigTypeURL, "clients", "unset"} {
		if !found[k] {
			t.Errorf("metric %s missing or wrong (found %v)", k, found)
		}
	}
}
