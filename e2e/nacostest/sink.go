package nacostest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Event is one call an adapter made on its sink.
type Event struct {
	At       time.Time
	Op       string // replace, upsert, delete, fail, replace-rules, upsert-rules, delete-rules
	Services []*registry.Service
	Keys     []registry.Key
	Err      error
}

// RecordSink applies what it is sent to a map, the way the merge layer would, and keeps every
// call for assertions.
type RecordSink struct {
	mu      sync.Mutex
	state   map[registry.Key]*registry.Service
	events  []Event
	rules   map[registry.RuleKey]*registry.Rule
	rejects map[string]string // where -> reason
	nReject int               // Reject calls
}

func NewRecordSink() *RecordSink {
	return &RecordSink{state: map[registry.Key]*registry.Service{}, rules: map[registry.RuleKey]*registry.Rule{}, rejects: map[string]string{}}
}

func (r *RecordSink) record(e Event) {
	e.At = time.Now()
	r.events = append(r.events, e)
}

func (r *RecordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[registry.Key]*registry.Service{}
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(Event{Op: "replace", Services: services})
}

func (r *RecordSink) Upsert(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(Event{Op: "upsert", Services: services})
}

func (r *RecordSink) Delete(keys []registry.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.state, k)
	}
	r.record(Event{Op: "delete", Keys: keys})
}

func (r *RecordSink) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Event{Op: "fail", Err: err})
}

func (r *RecordSink) Reject(where, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects[where] = reason
	r.nReject++
}

func (r *RecordSink) Accept(where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rejects, where)
}

// Rules are kept by key as the merge layer keeps them.
func (r *RecordSink) ReplaceRules(rules []*registry.Rule) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules = make(map[registry.RuleKey]*registry.Rule, len(rules))
	for _, rule := range rules {
		r.rules[rule.Key()] = rule
	}
	r.record(Event{Op: "replace-rules"})
}

func (r *RecordSink) UpsertRules(rules []*registry.Rule) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rule := range rules {
		r.rules[rule.Key()] = rule
	}
	r.record(Event{Op: "upsert-rules"})
}

func (r *RecordSink) DeleteRules(keys []registry.RuleKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.rules, k)
	}
	r.record(Event{Op: "delete-rules"})
}

// Rule returns the rule of a key, nil when absent.
func (r *RecordSink) Rule(k registry.RuleKey) *registry.Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rules[k]
}

// Services returns the current state sorted by key.
func (r *RecordSink) Services() []*registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*registry.Service, 0, len(r.state))
	for _, s := range r.state {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

// Get returns the service of a key, nil when absent.
func (r *RecordSink) Get(k registry.Key) *registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[k]
}

// Rejects returns the entries rejected and not accepted since (where -> reason), and how many
// Reject calls were made in all.
func (r *RecordSink) Rejects() (map[string]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.rejects), r.nReject
}

// Count returns how many calls of an operation were made.
func (r *RecordSink) Count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Op == op {
			n++
		}
	}
	return n
}

// EventsSince returns the calls from the i-th on.
func (r *RecordSink) EventsSince(i int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events[min(i, len(r.events)):]...)
}

// NEvents is the number of calls so far (an index for EventsSince).
func (r *RecordSink) NEvents() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// LastUpsert returns when the service was last sent, zero if never.
func (r *RecordSink) LastUpsert(k registry.Key) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		for _, s := range r.events[i].Services {
			if s.Key() == k {
				return r.events[i].At
			}
		}
	}
	return time.Time{}
}

// WaitService waits until the sink holds the service and check accepts it.
func (r *RecordSink) WaitService(t testing.TB, timeout time.Duration, k registry.Key, check func(*registry.Service) error) {
	t.Helper()
	WaitFor(t, timeout, k.String(), func() error {
		s := r.Get(k)
		if s == nil {
			return fmt.Errorf("not in the sink")
		}
		return check(s)
	})
}

// WaitSynced waits for the first Replace.
func (r *RecordSink) WaitSynced(t testing.TB, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "the first Replace", func() error {
		if r.Count("replace") == 0 {
			return fmt.Errorf("no Replace yet")
		}
		return nil
	})
}

// WaitFor polls cond until it holds, failing the test after timeout with what last failed. It
// polls every 20 ms without backing off (unlike servers.WaitFor): the tests time how long changes
// take to arrive, and a growing poll delay would be measured with them.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TeeSink sends every call to several sinks; all but the last get copies of the services, as
// each sink owns what it is given.
type TeeSink []registry.Sink

func (t TeeSink) Replace(s []*registry.Service) {
	for i, k := range t {
		k.Replace(t.own(i, s))
	}
}

func (t TeeSink) Upsert(s []*registry.Service) {
	for i, k := range t {
		k.Upsert(t.own(i, s))
	}
}

func (t TeeSink) own(i int, in []*registry.Service) []*registry.Service {
	if i == len(t)-1 {
		return in
	}
	out := make([]*registry.Service, len(in))
	for i, s := range in {
		out[i] = s.Clone()
	}
	return out
}

func (t TeeSink) Delete(keys []registry.Key) {
	for _, k := range t {
		k.Delete(keys)
	}
}

func (t TeeSink) Fail(err error) {
	for _, k := range t {
		k.Fail(err)
	}
}

func (t TeeSink) Reject(where, reason string, err error) {
	for _, k := range t {
		k.Reject(where, reason, err)
	}
}

func (t TeeSink) Accept(where string) {
	for _, k := range t {
		k.Accept(where)
	}
}

// Rules are immutable once sent, so every sink may share them.
func (t TeeSink) ReplaceRules(rules []*registry.Rule) {
	for _, k := range t {
		k.ReplaceRules(rules)
	}
}

func (t TeeSink) UpsertRules(rules []*registry.Rule) {
	for _, k := range t {
		k.UpsertRules(rules)
	}
}

func (t TeeSink) DeleteRules(keys []registry.RuleKey) {
	for _, k := range t {
		k.DeleteRules(keys)
	}
}

// Running is an adapter run by a test on a RecordSink.
type Running struct {
	Sink   *RecordSink
	cancel context.CancelFunc
	done   chan error
}

// Run runs a on a new RecordSink until the test ends or Stop.
func Run(t testing.TB, a registry.Adapter) *Running {
	r := &Running{Sink: NewRecordSink(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx, r.Sink) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the adapter and waits for it; it may be called more than once.
func (r *Running) Stop() {
	r.cancel()
	<-r.done
	r.done <- nil
}

// MustJSON renders v as indented JSON with a final newline (golden files).
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Logger logs through the test, at Info and above.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// AppKey is the key of an application service of the public namespace's default group.
func AppKey(name string) registry.Key {
	return registry.Key{Kind: registry.KindApplication, Namespace: publicNamespace, Group: defaultGroup, Name: name}
}

// InstancesAre checks a service's instances, rendered "address:port/weight/healthy/enabled".
func InstancesAre(want ...string) func(*registry.Service) error {
	return func(s *registry.Service) error {
		var got []string
		for _, in := range s.Instances {
			var port uint32
			for _, p := range in.Ports {
				port = p
			}
			got = append(got, fmt.Sprintf("%s:%d/%d/%v/%v", in.Address, port, in.Weight, in.Healthy, in.Enabled))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("instances %q, want %q", got, want)
		}
		return nil
	}
}
