package consul

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
)

// TestAddressFailover: with address [A, B] and the agent at A stopped, the adapter reads from B
// from its first request: the connection A refuses is passed over within the request, so the
// registry never fails, and /debug/registries names B as the address in use.
func TestAddressFailover(t *testing.T) {
	dead := servers.StartConsul(t, servers.ConsulOptions{})
	dead.Stop() // its port now refuses connections, as a stopped agent's does
	live := servers.StartConsul(t, servers.ConsulOptions{})
	register(t, agentClient(t, live, ""), &api.AgentServiceRegistration{ID: "pay-1", Name: "pay", Address: "127.0.0.5", Port: 80}, api.HealthPassing)

	start := time.Now()
	a, sink := startAdapter(t, Config{Address: Addresses{dead.Addr(), live.Addr()}})
	waitFor(t, sink, 10*time.Second, "the first sync through the second address", func(r *testkit.RecordSink) bool { return r.Get(appKey(dc, "pay")) != nil })
	t.Logf("first sync through the second address after %v", time.Since(start).Round(time.Millisecond))
	for _, e := range sink.Events() {
		if e.Op == "fail" {
			t.Errorf("the registry failed although the second address answers: %v", e.Err)
		}
	}
	if got := a.Describe()["address"]; got != live.Addr() {
		t.Errorf("address in use %v, want %s", got, live.Addr())
	}
}
