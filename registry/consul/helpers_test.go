package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// sinkEvent is one call the adapter made on the sink.
type sinkEvent struct {
	at       time.Time
	op       string // replace, upsert, delete, fail
	services []*registry.Service
	keys     []registry.Key
	err      error
}

// recordSink applies what it is sent to a map, as the merge layer would, and keeps every call.
type recordSink struct {
	mu      sync.Mutex
	state   map[registry.Key]*registry.Service
	events  []sinkEvent
	rejects map[string]string
	changed chan struct{}
}

func newRecordSink() *recordSink {
	return &recordSink{state: map[registry.Key]*registry.Service{}, rejects: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (r *recordSink) record(e sinkEvent) {
	e.at = time.Now()
	r.events = append(r.events, e)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[registry.Key]*registry.Service{}
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(sinkEvent{op: "replace", services: services})
}

func (r *recordSink) Upsert(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(sinkEvent{op: "upsert", services: services})
}

func (r *recordSink) Delete(keys []registry.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.state, k)
	}
	r.record(sinkEvent{op: "delete", keys: keys})
}

func (r *recordSink) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(sinkEvent{op: "fail", err: err})
}

func (r *recordSink) Reject(where, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects[where] = reason
}

func (r *recordSink) Accept(where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rejects, where)
}

func (r *recordSink) ReplaceRules([]*registry.Rule)  {}
func (r *recordSink) UpsertRules([]*registry.Rule)   {}
func (r *recordSink) DeleteRules([]registry.RuleKey) {}

// services returns the current state sorted by key.
func (r *recordSink) services() []*registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*registry.Service, 0, len(r.state))
	for _, s := range r.state {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

func (r *recordSink) get(k registry.Key) *registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[k]
}

// ops returns the operations recorded so far.
func (r *recordSink) ops() []sinkEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sinkEvent(nil), r.events...)
}

// waitFor waits until cond holds on the sink, or fails the test after timeout, and returns when
// it first held.
func (r *recordSink) waitFor(t testing.TB, timeout time.Duration, what string, cond func(r *recordSink) bool) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if cond(r) {
			return time.Now()
		}
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; sink holds %s", timeout, what, dump(r.services()))
		}
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	if len(b) > 4000 {
		b = append(b[:4000], "..."...)
	}
	return string(b)
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
func startAdapter(t testing.TB, cfg Config) (*Adapter, *recordSink) {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := New(cfg, registry.Options{Name: "consul"})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancellation")
		}
	})
	return a, sink
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
