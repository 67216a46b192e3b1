package eureka

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// recordSink keeps what the adapter sent: the state of the last Replace, and counts.
type recordSink struct {
	mu       sync.Mutex
	state    map[string]*registry.Service // by service name
	replaces int
	fails    int
	rejects  map[string]string
}

func newRecordSink() *recordSink {
	return &recordSink{state: map[string]*registry.Service{}, rejects: map[string]string{}}
}

func (r *recordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[string]*registry.Service{}
	for _, s := range services {
		r.state[s.Name] = s
	}
	r.replaces++
}
func (r *recordSink) Upsert([]*registry.Service) { panic("the eureka adapter sends whole states") }
func (r *recordSink) Delete([]registry.Key)      { panic("the eureka adapter sends whole states") }
func (r *recordSink) Fail(error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails++
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

func (r *recordSink) services() []*registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*registry.Service
	for _, s := range r.state {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *recordSink) get(name string) *registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[name]
}

func (r *recordSink) counts() (replaces, fails int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replaces, r.fails
}

// startAdapter runs an adapter on cfg until the test ends.
func startAdapter(t testing.TB, cfg Config) (*Adapter, *recordSink) {
	t.Helper()
	a, err := New(cfg.WithDefaults(), registry.Options{Name: "eureka", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, sink); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return a, sink
}

// The Eureka client calls and the wait helper are eurekatest's (shared with the pipeline and
// e2e tests).
type springInstance = eurekatest.Instance

var (
	waitFor   = eurekatest.WaitFor
	register  = eurekatest.Register
	cancel    = eurekatest.Cancel
	setStatus = eurekatest.SetStatus
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
