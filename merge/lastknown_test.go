package merge

import (
	"errors"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// lastKnown renders LastKnown as registry -> "name=instances ..." for compact assertions.
func lastKnown(m *Merger) map[string]string {
	out := map[string]string{}
	for _, lk := range m.LastKnown() {
		desc := describe(&Snapshot{Services: lk.Services})
		if lk.Stale {
			desc += " (stale)"
		}
		out[lk.Registry] = desc
	}
	return out
}

func TestLastKnown(t *testing.T) {
	h := newHarness(t, Options{}, "zk", "nacos", "silent")
	changed := func() bool {
		select {
		case <-h.m.Changes():
			return true
		default:
			return false
		}
	}
	rev := func() uint64 { r, _ := h.m.Revision(); return r }

	if got := lastKnown(h.m); len(got) != 0 {
		t.Fatalf("before anything: %v; want no registry (unknown is not empty)", got)
	}
	h.m.Restore("nacos", []*registry.Service{svc("billing", addrs(3, 2)...)})
	if !changed() {
		t.Error("no change signalled by Restore")
	}
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 4)...)})
	h.sink("silent").Fail(errors.New("connection refused"))
	if got := lastKnown(h.m); len(got) != 2 || got["zk"] != "orders=4" || got["nacos"] != "billing=2 (stale)" {
		t.Errorf("LastKnown %v; want zk synced, nacos restored, silent (failed, never read) left out", got)
	}
	if _, synced := h.m.Revision(); synced != 1 {
		t.Errorf("synced %d, want 1", synced)
	}

	// Coalesced: many changes, one pending signal; the revision counts each.
	if !changed() || changed() {
		t.Error("want exactly one pending signal after several changes")
	}
	before := rev()
	h.sink("zk").Upsert([]*registry.Service{svc("orders", addrs(1, 5)...)})
	h.sink("zk").Upsert([]*registry.Service{svc("users", "10.0.2.1")})
	if !changed() || changed() || rev() != before+2 {
		t.Errorf("revision %d -> %d, want +2 with one signal", before, rev())
	}

	// Nothing served changed: no new revision, no signal (a periodic resync costs the saver nothing).
	before = rev()
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 5)...), svc("users", "10.0.2.1")})
	h.sink("zk").Fail(errors.New("session expired"))
	h.sink("zk").Upsert([]*registry.Service{svc("orders", "10.0.1.1")}) // recorded, not served: frozen
	if rev() != before || changed() {
		t.Errorf("revision %d -> %d or a signal without a change of what is served", before, rev())
	}
	if got := lastKnown(h.m)["zk"]; got != "orders=5 users=1" {
		t.Errorf("failed registry: LastKnown %q; want the held state, not the unserved report", got)
	}

	// A first sync is a change worth saving even when it confirms the restored state exactly.
	before = rev()
	h.sink("nacos").Replace([]*registry.Service{svc("billing", addrs(3, 2)...)})
	if _, synced := h.m.Revision(); rev() != before+1 || synced != 2 || !changed() {
		t.Errorf("first sync of nacos: revision %d -> %d, synced %d", before, rev(), synced)
	}
	if got := lastKnown(h.m)["nacos"]; got != "billing=2" {
		t.Errorf("nacos after its sync: %q, want no longer stale", got)
	}
}

// A held mass drop is saved as the held (served) state, so a restart keeps holding it: the
// restored state is what the drop is compared with.
func TestLastKnownKeepsHeldMassDrop(t *testing.T) {
	h := newHarness(t, Options{}, "zk")
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 10)...)})
	h.mustFlush()
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	if p := h.status("zk").Protection; p == nil || p.Reason != "mass-drop" {
		t.Fatalf("protection %+v, want a held mass drop", p)
	}
	saved := h.m.LastKnown()
	if got := lastKnown(h.m)["zk"]; got != "orders=10" {
		t.Fatalf("LastKnown %q, want the held 10 instances", got)
	}

	// The next run restores it, and the registry's first Replace is held against it again.
	next := newHarness(t, Options{}, "zk")
	var services []*registry.Service
	for _, s := range saved[0].Services {
		services = append(services, s.Clone())
	}
	next.m.Restore("zk", services)
	next.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	if got := describe(next.mustFlush()); got != "orders=10" {
		t.Errorf("after the restart %q, want the drop still held", got)
	}
	if p := next.status("zk").Protection; p == nil || p.Reason != "mass-drop" {
		t.Errorf("protection after the restart %+v", p)
	}
}
