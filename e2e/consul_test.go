package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// What the Consul scenario registers, and what Istio must make of it (docs/registries.md):
//   - a Spring Cloud Consul service is "<service>.<datacenter>.consul" (the dev agent's
//     datacenter is dc1), its port http, its endpoints weighted Consul weight x 100;
//   - a Dubbo 2.7 provider (service named after the interface, URL in Meta "url") gets the Dubbo
//     interface host every registry gives it, "<interface>-<group>-<version>" lower-cased with
//     '.' in the version as '-', on Dubbo's port;
//   - an instance whose check goes critical leaves the endpoints.
const (
	consulRegistryName = "consul-e2e"
	consulOrdersHost   = "orders.dc1.consul"
	consulDubboHost    = "org.apache.dubbo.demo.demoservice-g1-1-0-0"
)

var consulHosts = []string{consulOrdersHost, consulDubboHost}

// TestConsulThroughIstiod: services registered in a real Consul agent as Spring Cloud Consul and
// Dubbo register them become clusters with endpoints for a sidecar of a real Istiod fed by the
// bridge; a check going critical takes its endpoint out; /debug/registries shows the watched
// queries with their indexes.
func TestConsulThroughIstiod(t *testing.T) {
	t.Parallel()
	bin := suite.Build(t, "./cmd/mcp-bridge")
	suite.Cluster(t)
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl, err := api.NewClient(&api.Config{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("registries:\n  - name: %s\n    type: consul\n    consul:\n      address: %s\n      recoveryDelay: 1s\n", consulRegistryName, agent.Addr())
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: cfg})
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})

	reg := func(r *api.AgentServiceRegistration) {
		t.Helper()
		r.Check = &api.AgentServiceCheck{CheckID: "check:" + r.ID, TTL: "10m", Status: api.HealthPassing}
		if err := cl.Agent().ServiceRegister(r); err != nil {
			t.Fatalf("registering %s: %v", r.ID, err)
		}
	}
	registeredAt := time.Now()
	reg(&api.AgentServiceRegistration{ID: "orders-8080-1", Name: "orders", Address: "127.0.0.31", Port: 8080,
		Meta: map[string]string{"secure": "false"}, Weights: &api.AgentWeights{Passing: 1, Warning: 1}})
	reg(&api.AgentServiceRegistration{ID: "orders-8080-2", Name: "orders", Address: "127.0.0.32", Port: 8080,
		Meta: map[string]string{"secure": "false"}, Weights: &api.AgentWeights{Passing: 2, Warning: 1}})
	reg(&api.AgentServiceRegistration{ID: "demo-1", Name: "org.apache.dubbo.demo.DemoService", Address: "127.0.0.33", Port: 20880,
		Tags: []string{"dubbo", "application=demo-provider", "group=g1", "version=1.0.0"},
		Meta: map[string]string{"url": "dubbo://127.0.0.33:20880/org.apache.dubbo.demo.DemoService?application=demo-provider&group=g1&interface=org.apache.dubbo.demo.DemoService&side=provider&version=1.0.0"}})
	registered := map[string][]xdsview.Endpoint{
		outboundCluster(consulOrdersHost, 8080, ""): {
			{Address: "127.0.0.31:8080", Weight: 100},
			{Address: "127.0.0.32:8080", Weight: 200},
		},
		outboundCluster(consulDubboHost, 20880, ""): {{Address: "127.0.0.33:20880", Weight: 100}},
	}
	seen := waitOwnedClusters(t, view, consulHosts, "the Consul registrations", registered, 30*time.Second)
	t.Logf("measure: Consul registration of two services -> sidecar CDS+EDS %v", seen.Sub(registeredAt).Round(time.Millisecond))

	at := time.Now()
	if err := cl.Agent().UpdateTTL("check:orders-8080-2", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(registered)
	want[outboundCluster(consulOrdersHost, 8080, "")] = []xdsview.Endpoint{{Address: "127.0.0.31:8080", Weight: 100}}
	seen = waitOwnedClusters(t, view, consulHosts, "orders down to its passing endpoint", want, 15*time.Second)
	t.Logf("measure: Consul check critical -> sidecar EDS %v", seen.Sub(at).Round(time.Millisecond))

	// /debug/registries: one service-list query and one health query per service, with indexes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/registries")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Adapters map[string]struct {
			Queries []struct {
				Query   string `json:"query"`
				Service string `json:"service"`
				Index   uint64 `json:"index"`
			} `json:"queries"`
		} `json:"adapters"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("decoding /debug/registries: %v", err)
	}
	qs := page.Adapters[consulRegistryName].Queries
	var names []string
	for _, q := range qs {
		if q.Index == 0 {
			t.Errorf("query %s %s has index 0", q.Query, q.Service)
		}
		names = append(names, q.Query+" "+q.Service)
	}
	if got := strings.Join(names, ","); got != "catalog/services ,health/service orders,health/service org.apache.dubbo.demo.DemoService" {
		t.Errorf("watched queries %q; page: %s", got, body)
	}
}
