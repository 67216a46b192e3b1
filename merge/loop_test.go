package merge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestPointerStability(t *testing.T) {
	h := newHarness(t, Options{}, "a", "b")
	h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1"), svc("users", "10.0.1.1")})
	h.sink("b").Replace([]*registry.Service{svc("billing", "10.0.2.1"), svc("orders", "10.0.3.1")})
	first := h.mustFlush()
	if first.Changed != 3 || first.Generation != 1 {
		t.Errorf("first snapshot: changed %d generation %d; want 3, 1", first.Changed, first.Generation)
	}
	ptr := func(s *Snapshot) map[string]*registry.Service {
		out := map[string]*registry.Service{}
		for _, x := range s.Services {
			out[x.Name] = x
		}
		return out
	}
	before := ptr(first)

	// A resync with identical content changes nothing: no snapshot at all.
	h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1"), svc("users", "10.0.1.1")})
	h.noSnapshot()

	// One service changes: only its pointer is new.
	h.sink("a").Upsert([]*registry.Service{svc("users", "10.0.1.1", "10.0.1.2")})
	second := h.mustFlush()
	after := ptr(second)
	if second.Changed != 1 || second.Generation != 2 {
		t.Errorf("second snapshot: changed %d generation %d; want 1, 2", second.Changed, second.Generation)
	}
	if after["users"] == before["users"] {
		t.Error("changed service kept its pointer")
	}
	if after["orders"] != before["orders"] || after["billing"] != before["billing"] {
		t.Error("unchanged services got new pointers")
	}
	// The earlier snapshot is untouched.
	if len(before["users"].Instances) != 1 || len(first.Services) != 3 {
		t.Error("an emitted snapshot was modified")
	}

	// A change to one member of a merged service gives the merged service a new pointer.
	h.sink("b").Upsert([]*registry.Service{svc("orders", "10.0.3.1", "10.0.3.2")})
	third := ptr(h.mustFlush())
	if third["orders"] == after["orders"] || third["users"] != after["users"] {
		t.Error("merged service pointer: want new for orders, same for users")
	}

	// Sorted by identity.
	var names []string
	for _, s := range h.last.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "billing,orders,users" {
		t.Errorf("order %v", names)
	}
}

func TestDebounce(t *testing.T) {
	const quiet, max = 100 * time.Millisecond, time.Second
	h := newHarness(t, Options{Debounce: Debounce{Quiet: quiet, Max: max}}, "r")
	s := h.sink("r")
	s.Replace([]*registry.Service{svc("orders", "10.0.0.1")})
	h.mustFlush()

	t0 := h.clock.Now()
	s.Upsert([]*registry.Service{svc("orders", "10.0.0.1", "10.0.0.2")})
	h.clock.Advance(50 * time.Millisecond)
	if snap, next := h.poll(); snap != nil || !next.Equal(t0.Add(quiet)) {
		t.Fatalf("50ms after one event: snapshot %v, next %v; want none, %v", snap, next, t0.Add(quiet))
	}
	h.clock.Advance(50 * time.Millisecond)
	snap, _ := h.poll()
	if snap == nil || !snap.OldestEvent.Equal(t0) || snap.Changed != 1 {
		t.Fatalf("after the quiet period: %+v", snap)
	}

	// A registry that keeps changing every 90ms (under the quiet period) still gets out at Max.
	t1 := h.clock.Now()
	for i := 0; ; i++ {
		s.Upsert([]*registry.Service{svc("orders", addrs(1, i+1)...)})
		h.clock.Advance(90 * time.Millisecond)
		snap, next := h.poll()
		if snap != nil {
			if elapsed := h.clock.Now().Sub(t1); elapsed < max || elapsed > max+90*time.Millisecond {
				t.Errorf("emitted after %v of continuous events; want at %v", elapsed, max)
			}
			if !snap.OldestEvent.Equal(t1) || len(snap.Services[0].Instances) != i+1 {
				t.Errorf("snapshot oldest %v instances %d; want %v, %d", snap.OldestEvent, len(snap.Services[0].Instances), t1, i+1)
			}
			break
		}
		if want := earliest(h.clock.Now().Add(quiet-90*time.Millisecond), t1.Add(max)); !next.Equal(want) {
			t.Fatalf("event %d: next wake-up %v, want %v", i, next, want)
		}
		if i > 20 {
			t.Fatal("never emitted")
		}
	}
	if v := testutil.ToFloat64(h.m.met.snapshots); v != 3 {
		t.Errorf("snapshots_total %v, want 3", v)
	}
}

func TestReadiness(t *testing.T) {
	// Registry "a" has synced; what "b" did decides whether the first snapshot may go out. A
	// registry's state must be known (read in this run, or restored from the previous one):
	// failing says nothing about what it holds, and a first snapshot without it would make
	// Istiod delete its services.
	cases := []struct {
		name  string
		b     func(h *harness)
		ready bool
		want  string // the first snapshot, when ready
	}{
		{"synced", func(h *harness) { h.sink("b").Replace([]*registry.Service{svc("users", "10.0.1.1")}) }, true, "orders=1 users=1"},
		{"synced empty", func(h *harness) { h.sink("b").Replace(nil) }, true, "orders=1"},
		{"silent", func(h *harness) {}, false, ""},
		{"failed before its first sync", func(h *harness) { h.sink("b").Fail(errors.New("connection refused")) }, false, ""},
		{"only rejected entries", func(h *harness) { h.sink("b").Reject("/x", "bad-url", errors.New("no host")) }, false, ""},
		{"changes without a full state", func(h *harness) { h.sink("b").Upsert([]*registry.Service{svc("users", "10.0.1.1")}) }, false, ""},
		{"failed after its first sync", func(h *harness) {
			h.sink("b").Replace([]*registry.Service{svc("users", "10.0.1.1")})
			h.sink("b").Fail(errors.New("session expired"))
		}, true, "orders=1 users=1"},
		{"restored", func(h *harness) { h.m.Restore("b", []*registry.Service{svc("users", "10.0.1.1", "10.0.1.2")}) }, true, "orders=1 users=2"},
		{"restored empty", func(h *harness) { h.m.Restore("b", nil) }, true, "orders=1"},
		{"restored, then failed", func(h *harness) {
			h.m.Restore("b", []*registry.Service{svc("users", "10.0.1.1")})
			h.sink("b").Fail(errors.New("connection refused"))
		}, true, "orders=1 users=1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{}, "a", "b")
			h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1")})
			c.b(h)
			if got := h.m.Ready(); got != c.ready {
				t.Fatalf("Ready() = %v, want %v", got, c.ready)
			}
			if st := h.status("b"); st.AwaitingInitialSync == c.ready {
				t.Errorf("status awaitingInitialSync = %v, want %v", st.AwaitingInitialSync, !c.ready)
			}
			snap := h.flush()
			switch {
			case c.ready && snap == nil:
				t.Fatal("no first snapshot although ready")
			case c.ready && describe(snap) != c.want:
				t.Errorf("first snapshot %q, want %q", describe(snap), c.want)
			case !c.ready && snap != nil:
				t.Fatalf("first snapshot %q went out without b", describe(snap))
			}
			if !c.ready {
				if _, next := h.poll(); !next.Equal(h.m.started.Add(DefaultInitialSyncTimeout)) {
					t.Errorf("next wake-up %v, want the initial-sync deadline", next)
				}
			}
		})
	}

	t.Run("a registry failing before its first sync is given up on at the timeout, loudly", func(t *testing.T) {
		var logs strings.Builder
		h := newHarness(t, Options{
			Protection: Protection{InitialSyncTimeout: 10 * time.Second},
			Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		}, "a", "zk")
		h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1")})
		h.sink("zk").Fail(errors.New("dial tcp 127.0.0.1:2181: connection refused"))
		h.clock.Advance(9 * time.Second)
		if snap, _ := h.poll(); snap != nil || h.m.Ready() {
			t.Fatalf("emitted (%v) or ready (%v) before the timeout", snap, h.m.Ready())
		}
		if st := h.status("zk"); !st.AwaitingInitialSync || !st.Protected || st.Services != 0 {
			t.Errorf("zk status %+v; want awaiting its initial sync, failed with nothing held", st)
		}
		h.clock.Advance(time.Second)
		snap, _ := h.poll()
		if snap == nil || describe(snap) != "orders=1" {
			t.Fatalf("at the timeout: %v", snap)
		}
		if !h.m.Ready() {
			t.Error("not ready after the first snapshot")
		}
		st := h.status("zk")
		if !st.MissedInitialSync || st.AwaitingInitialSync || !strings.Contains(st.LastError, "connection refused") {
			t.Errorf("zk status %+v; want missed initial sync with its error", st)
		}
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "could not be read") || !strings.Contains(l, "registry=zk") {
			t.Errorf("no error log naming the registry:\n%s", l)
		}
		h.sink("zk").Replace([]*registry.Service{svc("users", "10.0.1.1")})
		if got := describe(h.mustFlush()); got != "orders=1 users=1" {
			t.Errorf("after zk synced %q", got)
		}
		if st := h.status("zk"); st.MissedInitialSync || !st.Connected {
			t.Errorf("after zk synced: status %+v", st)
		}
	})
	t.Run("registries declared in options", func(t *testing.T) {
		clock := newFakeClock()
		m, err := New(Options{Key: byName, Clock: clock, Registries: []string{"zk", "nacos"}})
		if err != nil {
			t.Fatal(err)
		}
		m.Sink("zk").Replace(nil)
		if m.Ready() {
			t.Fatal("ready although nacos, declared but never given a sink, has not synced")
		}
		m.Sink("nacos").Replace(nil)
		m.Sink("nacos").Fail(errors.New("later failure")) // a second Sink call reaches the same registry
		st := m.Status()
		if !m.Ready() || len(st) != 2 || st[1].Name != "nacos" || st[1].Connected || !st[1].Protected {
			t.Errorf("ready %v, status %+v", m.Ready(), st)
		}
	})
	t.Run("initial sync timeout", func(t *testing.T) {
		h := newHarness(t, Options{Protection: Protection{InitialSyncTimeout: 10 * time.Second}}, "a", "b")
		h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1")})
		h.clock.Advance(9 * time.Second)
		if snap, _ := h.poll(); snap != nil {
			t.Fatal("emitted before the timeout")
		}
		h.clock.Advance(time.Second)
		snap, _ := h.poll()
		if snap == nil || describe(snap) != "orders=1" {
			t.Fatalf("at the timeout: %v", snap)
		}
		if !h.m.Ready() {
			t.Error("not ready after the first snapshot")
		}
		if st := h.status("b"); !st.MissedInitialSync || st.Synced {
			t.Errorf("b status %+v; want missed initial sync", st)
		}
		h.sink("b").Replace([]*registry.Service{svc("users", "10.0.1.1")})
		if got := describe(h.mustFlush()); got != "orders=1 users=1" {
			t.Errorf("after b synced %q", got)
		}
		if st := h.status("b"); st.MissedInitialSync {
			t.Error("still flagged after syncing")
		}
	})
	t.Run("empty registries still get a first snapshot", func(t *testing.T) {
		h := newHarness(t, Options{}, "a")
		h.sink("a").Replace(nil)
		snap, _ := h.poll()
		if snap == nil || len(snap.Services) != 0 || !snap.OldestEvent.IsZero() {
			t.Fatalf("got %+v; want an empty first snapshot at once", snap)
		}
		h.noSnapshot() // and nothing more until something changes
	})
}

func TestRestore(t *testing.T) {
	t.Run("ready at once and served while the registry fails", func(t *testing.T) {
		h := newHarness(t, Options{}, "zk")
		h.m.Restore("zk", []*registry.Service{svc("orders", addrs(1, 3)...)})
		if !h.m.Ready() {
			t.Fatal("not ready on restored state")
		}
		// The first snapshot does not wait for the registry: its stale state goes out at once.
		if got := describe(h.mustFlush()); got != "orders=3" {
			t.Errorf("first snapshot %q; want the restored state", got)
		}
		h.sink("zk").Fail(errors.New("connection refused"))
		h.noSnapshot()
		st := h.status("zk")
		if !st.Stale || st.Protection == nil || st.Synced || st.AwaitingInitialSync || st.Services != 1 || st.Instances != 3 {
			t.Errorf("status %+v; want stale and protected, serving the restored 1/3", st)
		}
		restored := h.last.Services[0]
		h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 3)...), svc("users", "10.0.2.1")})
		snap := h.mustFlush()
		if got := describe(snap); got != "orders=3 users=1" {
			t.Errorf("after sync %q", got)
		}
		if find(snap, "orders") != restored {
			t.Error("a restored service the registry confirmed unchanged got a new pointer (translate would redo it)")
		}
		if st := h.status("zk"); st.Stale {
			t.Error("still stale after the first Replace")
		}
		// Restore after the sync is ignored.
		h.m.Restore("zk", nil)
		h.noSnapshot()
	})
	t.Run("an empty first Replace is held against the restored state", func(t *testing.T) {
		h := newHarness(t, Options{}, "zk")
		h.m.Restore("zk", []*registry.Service{svc("orders", addrs(1, 3)...)})
		h.m.Restore("gone", []*registry.Service{svc("x", "10.0.9.1")}) // no such registry: ignored
		h.sink("zk").Replace(nil)
		if got := describe(h.mustFlush()); got != "orders=3" {
			t.Errorf("got %q", got)
		}
		if p := h.status("zk").Protection; p == nil || p.Reason != "mass-drop" {
			t.Errorf("protection %+v", p)
		}
	})
}

func TestRejectAccept(t *testing.T) {
	h := newHarness(t, Options{}, "zk")
	s := h.sink("zk")
	s.Reject("/dubbo/a/providers/x", "bad-url", errors.New("no host"))
	s.Reject("/dubbo/b/providers/y", "bad-url", errors.New("no port"))
	s.Reject("/services/c/1", "bad-payload", errors.New("not JSON"))
	s.Reject("/services/c/1", "bad-payload", errors.New("still not JSON")) // same entry again
	gauge := func(reason string) float64 { return testutil.ToFloat64(h.m.met.rejected.WithLabelValues("zk", reason)) }
	if gauge("bad-url") != 2 || gauge("bad-payload") != 1 {
		t.Errorf("rejected gauges %v %v; want 2 1", gauge("bad-url"), gauge("bad-payload"))
	}
	st := h.status("zk")
	if st.RejectedTotal != 3 || len(st.Rejected) != 3 || st.Rejected[2].Error != "still not JSON" {
		t.Errorf("rejected %+v total %d", st.Rejected, st.RejectedTotal)
	}
	s.Accept("/dubbo/a/providers/x")
	s.Accept("/never/rejected")
	if gauge("bad-url") != 1 || h.status("zk").RejectedTotal != 2 {
		t.Errorf("after Accept: gauge %v total %d", gauge("bad-url"), h.status("zk").RejectedTotal)
	}
	// Reclassified entry moves between reasons.
	s.Reject("/services/c/1", "unknown-protocol", errors.New("proto foo"))
	if gauge("bad-payload") != 0 || gauge("unknown-protocol") != 1 {
		t.Errorf("after reclassifying: %v %v", gauge("bad-payload"), gauge("unknown-protocol"))
	}

	// Bounded detail, exact counts.
	for i := 0; i < 150; i++ {
		s.Reject(fmt.Sprintf("/bulk/%03d", i), "bad-url", errors.New("bad"))
	}
	st = h.status("zk")
	if st.RejectedTotal != 152 || len(st.Rejected) != maxRejectedDetails {
		t.Errorf("total %d, detailed %d; want 152, %d", st.RejectedTotal, len(st.Rejected), maxRejectedDetails)
	}
	if gauge("bad-url") != 151 {
		t.Errorf("bad-url gauge %v, want 151", gauge("bad-url"))
	}
	for i := 0; i < 150; i++ {
		s.Accept(fmt.Sprintf("/bulk/%03d", i))
	}
	if gauge("bad-url") != 1 || h.status("zk").RejectedTotal != 2 {
		t.Errorf("after accepting the bulk: gauge %v total %d", gauge("bad-url"), h.status("zk").RejectedTotal)
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"defaults", Options{}, ""},
		{"max below quiet", Options{Debounce: Debounce{Quiet: 2 * time.Second, Max: time.Second}}, "debounce.max: 1s is shorter than quiet 2s"},
		{"unknown edge", Options{Debounce: Debounce{Edge: "rising"}}, `debounce.edge: "rising" is not leading or trailing`},
		{"long quiet alone: max follows it", Options{Debounce: Debounce{Quiet: 2 * time.Second}}, ""},
		{"ratio above 1", Options{Protection: Protection{MaxDropRatio: 1.5}}, "protection.maxDropRatio"},
		{"negative ratio", Options{Protection: Protection{MaxDropRatio: -0.1}}, "protection.maxDropRatio"},
		{"negative failure hold", Options{Protection: Protection{FailureHold: -time.Second}}, "protection.failureHold"},
		{"unknown mode", Options{Duplicates: Duplicates{Mode: "overwrite"}}, "duplicates.mode"},
		{"prefer list in merge mode", Options{Duplicates: Duplicates{Prefer: []string{"a"}}}, "duplicates.prefer"},
		{"prefer listed twice", Options{Duplicates: Duplicates{Mode: DuplicatePrefer, Prefer: []string{"a", "a"}}}, "listed twice"},
		{"prefer names an unknown registry", Options{Registries: []string{"zk"}, Duplicates: Duplicates{Mode: DuplicatePrefer, Prefer: []string{"nacos"}}}, `duplicates.prefer: "nacos" is not a configured registry`},
		{"registry declared twice", Options{Registries: []string{"zk", "zk"}}, "registries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.WithDefaults().Validate()
			if c.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one naming %s", err, c.want)
			}
		})
	}
	// The blocks validate alone too, as the configuration file's loader calls them, naming
	// fields relative to the block.
	if err := (Protection{MaxDropRatio: 2, DropHold: -1}).Validate(); err == nil ||
		!strings.HasPrefix(err.Error(), "maxDropRatio: ") || !strings.Contains(err.Error(), "\ndropHold: ") {
		t.Errorf("Protection.Validate: %v", err)
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Key") {
		t.Errorf("New without Key: %v", err)
	}
}

// TestRunEmitsSerially drives Run on its goroutine with the fake clock, and adapters calling
// sinks concurrently (run with -race).
func TestRunEmitsSerially(t *testing.T) {
	clock := newFakeClock()
	m, err := New(Options{Key: byName, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 4
	sinks := make([]registry.Sink, writers)
	for i := range sinks {
		sinks[i] = m.Sink(fmt.Sprintf("r%d", i))
	}
	snaps := make(chan *Snapshot, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx, func(s *Snapshot) { snaps <- s })
		close(done)
	}()

	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Replace(nil)
			for j := 0; j < 50; j++ {
				s.Upsert([]*registry.Service{svc(fmt.Sprintf("svc-%d", i), addrs(i, j+1)...)})
			}
		}()
	}
	wg.Wait()
	// Time moves only when the test says so; keep nudging it until the final state is out.
	deadline := time.After(5 * time.Second)
	for {
		clock.Advance(DefaultMaxDelay)
		select {
		case s := <-snaps:
			if describe(s) == "svc-0=50 svc-1=50 svc-2=50 svc-3=50" {
				cancel()
				<-done
				return
			}
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatal("final state never emitted")
		}
	}
}

func TestIdentityChangeMovesService(t *testing.T) {
	// An update can change a service's identity (here a label picks the host); it must leave its
	// old identity, not linger there.
	key := func(s *registry.Service) string {
		if h := s.Labels["host"]; h != "" {
			return h
		}
		return byName(s)
	}
	h := newHarness(t, Options{Key: key}, "a", "b")
	h.sink("a").Replace([]*registry.Service{svc("orders", "10.0.0.1")})
	h.sink("b").Replace([]*registry.Service{svc("orders", "10.0.0.2")})
	if snap := h.mustFlush(); len(snap.Services) != 1 || len(snap.Services[0].Instances) != 2 {
		t.Fatalf("got %s; want one merged service", describe(snap))
	}
	moved := svc("orders", "10.0.0.2")
	moved.Labels = map[string]string{"host": "orders-v2"}
	h.sink("b").Upsert([]*registry.Service{moved})
	snap := h.mustFlush()
	if len(snap.Services) != 2 || snap.Changed != 2 {
		t.Fatalf("got %s (changed %d); want two services, both changed", describe(snap), snap.Changed)
	}
	if d := h.status("a").Duplicates; len(d) != 0 {
		t.Errorf("duplicate still reported: %+v", d)
	}
}

// TestDebounceEdge is issue 15's "no added latency for an isolated change": with the leading edge
// an event arriving when nothing is pending and the last snapshot is at least Quiet old goes out
// at once; one following a snapshot closely is batched as before; the trailing edge always waits.
func TestDebounceEdge(t *testing.T) {
	const quiet = 100 * time.Millisecond
	cases := []struct {
		name  string
		edge  DebounceEdge
		after time.Duration // since the previous snapshot
		delay time.Duration // until the event is emitted
	}{
		{"leading, isolated: at once", "", quiet, 0},
		{"leading, long after: at once", EdgeLeading, time.Hour, 0},
		{"leading, right after a snapshot: batched", EdgeLeading, 0, quiet},
		{"leading, just under quiet after: batched", EdgeLeading, quiet - time.Millisecond, quiet},
		{"trailing, isolated: waits", EdgeTrailing, time.Hour, quiet},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Debounce: Debounce{Edge: c.edge, Quiet: quiet}}, "r")
			s := h.sink("r")
			s.Replace([]*registry.Service{svc("orders", "10.0.0.1")})
			h.mustFlush()
			h.clock.Advance(c.after)
			t0 := h.clock.Now()
			s.Upsert([]*registry.Service{svc("orders", "10.0.0.1", "10.0.0.2")})
			if c.delay > 0 {
				h.clock.Advance(c.delay - time.Millisecond)
				if snap, next := h.poll(); snap != nil || !next.Equal(t0.Add(c.delay)) {
					t.Fatalf("%v after the event: snapshot %v, next %v; want none, %v", c.delay-time.Millisecond, snap, next, t0.Add(c.delay))
				}
				h.clock.Advance(time.Millisecond)
			}
			snap, _ := h.poll()
			if snap == nil || !snap.OldestEvent.Equal(t0) || snap.Changed != 1 {
				t.Fatalf("%v after the event: snapshot %+v; want the change", c.delay, snap)
			}
			// A burst after a leading-edge emission is batched by the quiet period.
			s.Upsert([]*registry.Service{svc("orders", "10.0.0.1")})
			if snap, _ := h.poll(); snap != nil {
				t.Fatalf("an event right after a snapshot was emitted at once: %+v", snap)
			}
		})
	}
}

// TestDebounceLeadingEdgeCountsFromEmitReturn: events arriving while emit runs (the bridge
// translating and setting the previous snapshot) are a burst and wait for the quiet period, even
// if emit took longer than Quiet.
func TestDebounceLeadingEdgeCountsFromEmitReturn(t *testing.T) {
	clock := newFakeClock()
	m, err := New(Options{Key: byName, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := m.Sink("r")
	s.Replace(nil)
	snaps := make(chan *Snapshot, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(snap *Snapshot) {
			if snap.Generation == 2 {
				// The downstream is slow with this one; an event arrives meanwhile.
				clock.Advance(time.Second)
				s.Upsert([]*registry.Service{svc("orders", "10.0.0.2")})
			}
			snaps <- snap
		})
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) *Snapshot {
		t.Helper()
		select {
		case snap := <-snaps:
			return snap
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no snapshot", what)
			return nil
		}
	}
	next("first")
	clock.Advance(time.Second)
	s.Upsert([]*registry.Service{svc("orders", "10.0.0.1")})
	next("isolated change") // at once: the fake clock does not move
	select {
	case snap := <-snaps:
		t.Fatalf("the event that arrived during emit went out at once: %s", describe(snap))
	case <-time.After(50 * time.Millisecond):
	}
	clock.Advance(DefaultQuiet)
	if got := describe(next("batched change")); got != "orders=1" {
		t.Errorf("batched change %q", got)
	}
}
