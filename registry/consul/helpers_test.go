package consul

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// waitFor waits until cond holds on the sink, or fails the test after timeout, and returns when
// it first held.
func waitFor(t testing.TB, sink *testkit.RecordSink, timeout time.Duration, what string, cond func(r *testkit.RecordSink) bool) time.Time {
	t.Helper()
	return sink.Wait(t, timeout, what, func() error {
		if !cond(sink) {
			return errNotYet
		}
		return nil
	})
}

// agentClient returns a Consul API client for the test's own registrations.
func agentClient(t testing.TB, c *servers.Consul, token string) *api.Client {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: c.Addr(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// startAdapter runs an adapter against the agent until the test ends.
func startAdapter(t testing.TB, cfg Config) (*Adapter, *testkit.RecordSink) {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := New(cfg, registry.Options{Name: "consul"})
	if err != nil {
		t.Fatal(err)
	}
	return a, testkit.Run(t, a).Sink
}

// register registers a service instance with the agent, with a TTL check in the given state
// (Spring Cloud Consul registers an HTTP check; a TTL check lets the test set the state).
func register(t testing.TB, cl *api.Client, reg *api.AgentServiceRegistration, status string) {
	t.Helper()
	if status != "" {
		reg.Check = &api.AgentServiceCheck{CheckID: "check:" + reg.ID, TTL: "10m", Status: status}
	}
	if err := cl.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("registering %s: %v", reg.ID, err)
	}
}

func setCheck(t testing.TB, cl *api.Client, id, status string) {
	t.Helper()
	if err := cl.Agent().UpdateTTL("check:"+id, "test", status); err != nil {
		t.Fatalf("setting check of %s to %s: %v", id, status, err)
	}
}

func appKey(dc, name string) registry.Key {
	return registry.Key{Kind: registry.KindApplication, Namespace: dc, Name: name}
}

func instanceCount(s *registry.Service) int {
	if s == nil {
		return -1
	}
	return len(s.Instances)
}

var errNotYet = errors.New("not yet")

func findInstance(s *registry.Service, id string) (registry.Instance, error) {
	if s == nil {
		return registry.Instance{}, errNotYet
	}
	for _, in := range s.Instances {
		if in.ID == id {
			return in, nil
		}
	}
	return registry.Instance{}, fmt.Errorf("no instance %s: %w", id, errNotYet)
}
