package merge

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/internal/fakeclock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// fakeClock is a Clock the test moves by hand, so holds and timeouts take no real time.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New() }

// harness drives a Merger's poll directly: no goroutine, fully deterministic.
type harness struct {
	t     testing.TB
	m     *Merger
	clock *fakeClock
	reg   *prometheus.Registry
	sinks map[string]registry.Sink
	last  *Snapshot
	held  *Snapshot // emitted by expire, returned by the next flush
}

// byName is the identity the tests use: the lower-cased service name, standing in for
// translate's host naming (which also lower-cases).
func byName(s *registry.Service) string { return strings.ToLower(s.Name) }

func newHarness(t testing.TB, opts Options, registries ...string) *harness {
	t.Helper()
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	opts.Clock, opts.Metrics = clock, reg
	if opts.Key == nil {
		opts.Key = byName
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, m: m, clock: clock, reg: reg, sinks: map[string]registry.Sink{}}
	for _, name := range registries {
		h.sinks[name] = m.Sink(name)
	}
	m.started = clock.Now() // what Run does first
	return h
}

func (h *harness) sink(name string) registry.Sink { return h.sinks[name] }

// poll runs the loop body once at the fake time and remembers an emitted snapshot.
func (h *harness) poll() (*Snapshot, time.Time) {
	snap, next := h.m.poll(h.clock.Now())
	if snap != nil {
		h.last = snap
		// As Run does once emit returns: the leading edge counts from here.
		h.m.mu.Lock()
		h.m.lastEmit = h.clock.Now()
		h.m.mu.Unlock()
	}
	return snap, next
}

// expire polls at the current time, as Run does when a hold's timer fires. A snapshot that
// emits (the leading edge sends an isolated change at once) is what the next flush returns.
func (h *harness) expire() {
	h.held, _ = h.poll()
}

// flush lets any debounce run out and returns the snapshot emitted, nil if none.
func (h *harness) flush() *Snapshot {
	h.t.Helper()
	if snap := h.held; snap != nil {
		h.held = nil
		return snap
	}
	h.clock.Advance(h.m.opts.Debounce.Max)
	snap, _ := h.poll()
	return snap
}

// mustFlush is flush that requires a snapshot.
func (h *harness) mustFlush() *Snapshot {
	h.t.Helper()
	snap := h.flush()
	if snap == nil {
		h.t.Fatal("no snapshot emitted")
	}
	return snap
}

// noSnapshot asserts that nothing is emitted (the served state did not change).
func (h *harness) noSnapshot() {
	h.t.Helper()
	if snap := h.flush(); snap != nil {
		h.t.Fatalf("unexpected snapshot: %s", describe(snap))
	}
}

func (h *harness) status(name string) RegistryStatus {
	h.t.Helper()
	for _, s := range h.m.Status() {
		if s.Name == name {
			return s
		}
	}
	h.t.Fatalf("no status for %s", name)
	return RegistryStatus{}
}

// svc builds a fresh service called name with one http port and an instance per address
// (the sink takes ownership, so every call builds new objects).
func svc(name string, addrs ...string) *registry.Service {
	s := &registry.Service{Kind: registry.KindApplication, Name: name, Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
	s.Instances = []registry.Instance{}
	for _, a := range addrs {
		s.Instances = append(s.Instances, registry.Instance{
			ID: a + ":8080", Address: a, Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true,
		})
	}
	return s
}

// addrs returns n addresses 10.0.<block>.1.. for building services.
func addrs(block, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d", block, i+1)
	}
	return out
}

// find returns the service named name in snap, nil if absent.
func find(snap *Snapshot, name string) *registry.Service {
	for _, s := range snap.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// describe renders a snapshot as "name=instances ..." sorted, for compact assertions.
func describe(snap *Snapshot) string {
	var parts []string
	for _, s := range snap.Services {
		parts = append(parts, fmt.Sprintf("%s=%d", s.Name, len(s.Instances)))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
