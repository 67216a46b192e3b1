package merge

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestFailureHoldsLastKnownStateUntilRecovery(t *testing.T) {
	h := newHarness(t, Options{}, "zk")
	zk := h.sink("zk")
	zk.Replace([]*registry.Service{svc("orders", addrs(1, 3)...), svc("users", addrs(2, 2)...)})
	if got := describe(h.mustFlush()); got != "orders=3 users=2" {
		t.Fatalf("initial snapshot %q", got)
	}

	zk.Fail(errors.New("zookeeper session expired"))
	// What a failing registry sends is recorded but not served: the state stays exactly as it was.
	zk.Upsert([]*registry.Service{svc("orders", addrs(1, 1)...)})
	zk.Delete([]registry.Key{{Kind: registry.KindApplication, Name: "users"}})
	h.noSnapshot()

	st := h.status("zk")
	if st.Protection == nil || st.Protection.Reason != "failure" || !st.Protection.Until.IsZero() {
		t.Errorf("protection %+v; want failure, until recovery", st.Protection)
	}
	if st.Connected || st.LastError != "zookeeper session expired" || st.Failures != 1 {
		t.Errorf("status %+v", st)
	}
	if st.Services != 2 || st.Instances != 5 || st.ReportedServices != 1 || st.ReportedInstances != 1 {
		t.Errorf("served %d/%d reported %d/%d; want served 2/5, reported 1/1",
			st.Services, st.Instances, st.ReportedServices, st.ReportedInstances)
	}
	if v := testutil.ToFloat64(h.m.met.protected.WithLabelValues("zk", "failure")); v != 1 {
		t.Errorf("protected{reason=failure} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(h.m.met.healthy.WithLabelValues("zk")); v != 0 {
		t.Errorf("healthy = %v, want 0", v)
	}

	// Recovery: the Replace is the truth again, including the service that went away meanwhile.
	zk.Replace([]*registry.Service{svc("orders", addrs(1, 3)...), svc("billing", addrs(3, 1)...)})
	if got := describe(h.mustFlush()); got != "billing=1 orders=3" {
		t.Errorf("after recovery %q", got)
	}
	if st := h.status("zk"); st.Protection != nil || !st.Connected {
		t.Errorf("after recovery: protection %+v connected %v", st.Protection, st.Connected)
	}
	if v := testutil.ToFloat64(h.m.met.protected.WithLabelValues("zk", "failure")); v != 0 {
		t.Errorf("protected{reason=failure} = %v after recovery, want 0", v)
	}
}

func TestFailureHoldTimeoutWithdraws(t *testing.T) {
	h := newHarness(t, Options{Protection: Protection{FailureHold: time.Minute}}, "zk", "nacos")
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	h.sink("nacos").Replace([]*registry.Service{svc("users", addrs(2, 2)...)})
	h.mustFlush()

	h.sink("zk").Fail(errors.New("connection refused"))
	failedAt := h.clock.Now()
	if p := h.status("zk").Protection; p == nil || !p.Until.Equal(failedAt.Add(time.Minute)) {
		t.Fatalf("protection %+v; want until fail time + 1m", p)
	}
	h.clock.Advance(59 * time.Second)
	snap, next := h.poll()
	if snap != nil || !next.Equal(failedAt.Add(time.Minute)) {
		t.Fatalf("before the hold ends: snapshot %v, next wake-up %v; want none, %v", snap, next, failedAt.Add(time.Minute))
	}
	h.clock.Advance(time.Second)
	h.expire() // the hold ends; its withdrawal is an isolated change, emitted at once and taken by the next flush
	if got := describe(h.mustFlush()); got != "users=2" {
		t.Errorf("after the failure hold %q; want zk's services withdrawn", got)
	}
	st := h.status("zk")
	if !st.Withdrawn || st.Protection != nil || st.Services != 0 {
		t.Errorf("status after withdrawal %+v", st)
	}

	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	if got := describe(h.mustFlush()); got != "orders=2 users=2" {
		t.Errorf("after recovery %q", got)
	}
	if st := h.status("zk"); st.Withdrawn || !st.Connected {
		t.Errorf("status after recovery %+v", st)
	}
}

func TestMassDropDecision(t *testing.T) {
	cases := []struct {
		name          string
		ratio         float64
		before, after int
		held          bool
	}{
		{"loses more than half", 0, 10, 4, true},
		{"loses exactly half", 0, 10, 5, false},
		{"loses a few", 0, 10, 9, false},
		{"grows", 0, 10, 20, false},
		{"everything", 0, 10, 0, true},
		{"small registry loses both", 0, 2, 0, true},
		{"small registry loses one of two", 0, 2, 1, false},
		{"single instance lost", 0, 1, 0, true},
		{"empty stays empty", 0, 0, 0, false},
		{"stricter ratio", 0.2, 10, 7, true},
		{"ratio 1 turns the check off", 1, 10, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Protection: Protection{MaxDropRatio: c.ratio}}, "eureka")
			s := h.sink("eureka")
			s.Replace([]*registry.Service{svc("orders", addrs(1, c.before)...)})
			h.mustFlush()
			s.Replace([]*registry.Service{svc("orders", addrs(1, c.after)...)})
			snap := h.flush()
			st := h.status("eureka")
			if c.held {
				if snap != nil || st.Protection == nil || st.Protection.Reason != "mass-drop" || st.Instances != c.before {
					t.Errorf("want held: snapshot %v, protection %+v, served %d", snap, st.Protection, st.Instances)
				}
				return
			}
			if st.Protection != nil || st.Instances != c.after {
				t.Errorf("want applied: protection %+v, served %d", st.Protection, st.Instances)
			}
			if c.before != c.after && (snap == nil || len(find(snap, "orders").Instances) != c.after) {
				t.Errorf("want a snapshot with %d instances, got %v", c.after, snap)
			}
		})
	}
}

func TestMassDropRelease(t *testing.T) {
	const hold = 5 * time.Minute
	cases := []struct {
		name string
		// then runs after a drop from 10 to 2 instances was held.
		then func(h *harness)
		want string
	}{
		{"a later replace within the ratio", func(h *harness) {
			h.sink("r").Replace([]*registry.Service{svc("orders", addrs(1, 8)...)})
		}, "orders=8"},
		{"upserts bring it back", func(h *harness) {
			h.sink("r").Upsert([]*registry.Service{svc("orders", addrs(1, 6)...)})
		}, "orders=6"},
		{"the hold time passes", func(h *harness) {
			h.clock.Advance(hold)
			h.expire()
		}, "orders=2"},
		{"the hold time passes, with later changes", func(h *harness) {
			h.sink("r").Upsert([]*registry.Service{svc("orders", addrs(1, 3)...)})
			h.clock.Advance(hold)
			h.expire()
		}, "orders=3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Protection: Protection{DropHold: hold}}, "r")
			h.sink("r").Replace([]*registry.Service{svc("orders", addrs(1, 10)...)})
			h.mustFlush()
			h.sink("r").Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
			h.noSnapshot()
			if v := testutil.ToFloat64(h.m.met.protected.WithLabelValues("r", "mass-drop")); v != 1 {
				t.Errorf("protected{reason=mass-drop} = %v, want 1", v)
			}
			c.then(h)
			if got := describe(h.mustFlush()); got != c.want {
				t.Errorf("after release %q, want %q", got, c.want)
			}
			if st := h.status("r"); st.Protection != nil {
				t.Errorf("still protected: %+v", st.Protection)
			}
		})
	}
}

func TestMassDropHeldWhileStillBelowRatio(t *testing.T) {
	h := newHarness(t, Options{Protection: Protection{DropHold: time.Minute}}, "r")
	h.sink("r").Replace([]*registry.Service{svc("orders", addrs(1, 10)...)})
	h.mustFlush()
	h.sink("r").Replace(nil)
	heldAt := h.clock.Now()
	h.noSnapshot()
	// Another suspicious Replace does not restart the hold.
	h.clock.Advance(30 * time.Second)
	h.sink("r").Replace([]*registry.Service{svc("orders", addrs(1, 1)...)})
	h.noSnapshot()
	if p := h.status("r").Protection; p == nil || !p.Since.Equal(heldAt) || !p.Until.Equal(heldAt.Add(time.Minute)) {
		t.Fatalf("protection %+v; want since %v until +1m", p, heldAt)
	}
	h.clock.Advance(30 * time.Second)
	h.expire()
	if got := describe(h.mustFlush()); got != "orders=1" {
		t.Errorf("after the hold %q", got)
	}
}

func TestRealDeregistrationPropagates(t *testing.T) {
	h := newHarness(t, Options{}, "nacos")
	s := h.sink("nacos")
	s.Replace([]*registry.Service{svc("orders", addrs(1, 2)...), svc("users", "10.0.2.1"), svc("billing", "10.0.3.1")})
	h.mustFlush()

	// One instance goes: an Upsert with the rest.
	s.Upsert([]*registry.Service{svc("orders", "10.0.1.1")})
	if got := describe(h.mustFlush()); got != "billing=1 orders=1 users=1" {
		t.Errorf("after losing one instance %q", got)
	}
	// The last instance goes: the service stays, with no instances (its host keeps existing).
	s.Upsert([]*registry.Service{svc("orders")})
	snap := h.mustFlush()
	if o := find(snap, "orders"); o == nil || len(o.Instances) != 0 {
		t.Errorf("orders after losing its last instance: %+v", o)
	}
	// The service is deregistered.
	s.Delete([]registry.Key{{Kind: registry.KindApplication, Name: "orders"}})
	if got := describe(h.mustFlush()); got != "billing=1 users=1" {
		t.Errorf("after Delete %q", got)
	}
	// Upsert and Delete are never held, even when they remove everything at once: the adapter
	// saw each deregistration happen.
	s.Delete([]registry.Key{{Kind: registry.KindApplication, Name: "users"}, {Kind: registry.KindApplication, Name: "billing"}})
	if got := describe(h.mustFlush()); got != "" {
		t.Errorf("after deleting everything %q", got)
	}
	if st := h.status("nacos"); st.Protection != nil {
		t.Errorf("protection %+v after real deregistrations", st.Protection)
	}
}

func TestReplaceDropsServiceWithinRatio(t *testing.T) {
	h := newHarness(t, Options{}, "consul")
	s := h.sink("consul")
	s.Replace([]*registry.Service{svc("a", addrs(1, 3)...), svc("b", addrs(2, 3)...), svc("c", "10.0.3.1")})
	h.mustFlush()
	// c (its single instance) is gone: 7 -> 6 instances is no mass drop, so it propagates.
	s.Replace([]*registry.Service{svc("a", addrs(1, 3)...), svc("b", addrs(2, 3)...)})
	if got := describe(h.mustFlush()); got != "a=3 b=3" {
		t.Errorf("got %q", got)
	}
}

func TestFailureDuringMassDropHold(t *testing.T) {
	h := newHarness(t, Options{Protection: Protection{DropHold: time.Minute}}, "r")
	s := h.sink("r")
	s.Replace([]*registry.Service{svc("orders", addrs(1, 10)...)})
	h.mustFlush()
	s.Replace([]*registry.Service{svc("orders", addrs(1, 1)...)})
	s.Fail(errors.New("disconnected"))
	// The failure freezes the state even past the drop's hold time.
	h.clock.Advance(2 * time.Minute)
	h.expire()
	h.noSnapshot()
	if p := h.status("r").Protection; p == nil || p.Reason != "failure" {
		t.Errorf("protection %+v, want failure", p)
	}
	// Recovery with a full state ends both.
	s.Replace([]*registry.Service{svc("orders", addrs(1, 9)...)})
	if got := describe(h.mustFlush()); got != "orders=9" {
		t.Errorf("got %q", got)
	}
}
