package testkit

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
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

// Option adds a check of how an adapter uses its sink; a breach panics in the adapter's
// goroutine, which fails the test binary loudly, as the adapter bug it is.
type Option func(*RecordSink)

// WholeStatesOnly is for adapters that only ever send Replace (Eureka): Upsert or Delete panics.
func WholeStatesOnly() Option { return func(r *RecordSink) { r.wholeStates = true } }

// ReplaceFirst makes an Upsert before the first Replace panic (the merge layer would hold a
// partial state as if it were the registry's).
func ReplaceFirst() Option { return func(r *RecordSink) { r.replaceFirst = true } }

// RecordSink applies what it is sent to maps, the way the merge layer would, and keeps every
// call for assertions.
type RecordSink struct {
	mu      sync.Mutex
	state   map[registry.Key]*registry.Service
	events  []Event
	rules   map[registry.RuleKey]*registry.Rule
	rejects map[string]string // where -> reason
	nReject int               // Reject calls
	failed  bool              // a Fail not yet followed by a Replace
	changed chan struct{}     // wakes Wait on every call

	wholeStates, replaceFirst bool
}

// NewRecordSink returns an empty sink with the given checks.
func NewRecordSink(opts ...Option) *RecordSink {
	r := &RecordSink{state: map[registry.Key]*registry.Service{}, rules: map[registry.RuleKey]*registry.Rule{},
		rejects: map[string]string{}, changed: make(chan struct{}, 1)}
	for _, o := range opts {
		o(r)
	}
	return r
}

// record keeps a call and wakes a waiter; r.mu is held.
func (r *RecordSink) record(e Event) {
	e.At = time.Now()
	r.events = append(r.events, e)
	r.notify()
}

func (r *RecordSink) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *RecordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[registry.Key]*registry.Service{}
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.failed = false
	r.record(Event{Op: "replace", Services: services})
}

func (r *RecordSink) Upsert(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wholeStates {
		panic("Upsert from an adapter that sends whole states")
	}
	if r.replaceFirst && r.countLocked("replace") == 0 {
		panic("Upsert before the first Replace")
	}
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(Event{Op: "upsert", Services: services})
}

func (r *RecordSink) Delete(keys []registry.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wholeStates {
		panic("Delete from an adapter that sends whole states")
	}
	for _, k := range keys {
		delete(r.state, k)
	}
	r.record(Event{Op: "delete", Keys: keys})
}

func (r *RecordSink) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.record(Event{Op: "fail", Err: err})
}

func (r *RecordSink) Reject(where, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects[where] = reason
	r.nReject++
	r.notify()
}

func (r *RecordSink) Accept(where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rejects, where)
	r.notify()
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

// Rules returns a copy of the rules held.
func (r *RecordSink) Rules() map[registry.RuleKey]*registry.Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.rules)
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

// Failed says whether the last Fail has not been followed by a Replace.
func (r *RecordSink) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Count returns how many calls of an operation were made.
func (r *RecordSink) Count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(op)
}

func (r *RecordSink) countLocked(op string) int {
	n := 0
	for _, e := range r.events {
		if e.Op == op {
			n++
		}
	}
	return n
}

// Events returns every call so far.
func (r *RecordSink) Events() []Event { return r.EventsSince(0) }

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

// Wait re-checks cond on every call the sink gets (and every PollInterval, for conditions on
// more than the sink) until it returns nil, and returns when it first held; after timeout it
// fails the test with what last failed and what the sink holds.
func (r *RecordSink) Wait(t testing.TB, timeout time.Duration, what string, cond func() error) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Now()
		}
		select {
		case <-r.changed:
		case <-time.After(PollInterval):
		case <-deadline:
			t.Fatalf("waiting %v for %s: %v; the sink holds %s", timeout, what, err, Dump(r.Services()))
		}
	}
}

// WaitService waits until the sink holds the service and check accepts it.
func (r *RecordSink) WaitService(t testing.TB, timeout time.Duration, k registry.Key, check func(*registry.Service) error) {
	t.Helper()
	r.Wait(t, timeout, k.String(), func() error {
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
	r.Wait(t, timeout, "the first Replace", func() error {
		if r.Count("replace") == 0 {
			return fmt.Errorf("no Replace yet")
		}
		return nil
	})
}

// Dump renders v as indented JSON for a failure message, cut at 4000 bytes.
func Dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	if len(b) > 4000 {
		b = append(b[:4000], "..."...)
	}
	return string(b)
}
