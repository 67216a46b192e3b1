package merge

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Registries added and removed at runtime (a configuration reload): a removed registry's
// services leave the merged state, including its share of a duplicate, and its series go; the
// registries declared after it keep working (their order numbers are renumbered); an added one
// never makes a ready merger unready; Rekey follows a new identity.
func TestRuntimeRegistries(t *testing.T) {
	h := newHarness(t, Options{}, "a", "b", "c")
	h.sink("a").Replace([]*registry.Service{svc("shared", "10.0.0.1"), svc("only-a", "10.0.0.2")})
	h.sink("b").Replace([]*registry.Service{svc("shared", "10.0.1.1")})
	h.sink("c").Replace([]*registry.Service{svc("only-c", "10.0.2.1")})
	h.mustFlush()

	if !h.m.RemoveRegistry("a") {
		t.Fatal("RemoveRegistry(a) = false")
	}
	snap := h.mustFlush()
	if find(snap, "only-a") != nil {
		t.Errorf("only-a still served after its registry was removed: %s", describe(snap))
	}
	if s := find(snap, "shared"); s == nil || len(s.Instances) != 1 || s.Instances[0].Address != "10.0.1.1" {
		t.Errorf("shared after removing a: %+v, want b's one instance", s)
	}
	for _, st := range h.m.Status() {
		if st.Name == "a" {
			t.Errorf("removed registry still on Status")
		}
	}
	if n := testutil.CollectAndCount(h.m.met.services); n != 2 {
		t.Errorf("%d mcp_bridge_registry_services series, want 2 (b, c)", n)
	}
	// c was declared after a: its sink still reaches c after the renumbering.
	h.sink("c").Upsert([]*registry.Service{svc("only-c", "10.0.2.1", "10.0.2.2")})
	if s := find(h.mustFlush(), "only-c"); s == nil || len(s.Instances) != 2 {
		t.Errorf("only-c after an upsert from c: %+v", s)
	}

	if !h.m.AddRegistry("d") || h.m.AddRegistry("d") {
		t.Error("AddRegistry(d) twice: want true then false")
	}
	if !h.m.Ready() {
		t.Error("adding a registry made the merger unready")
	}
	h.m.Sink("d").Replace([]*registry.Service{svc("only-d", "10.0.3.1")})
	if find(h.mustFlush(), "only-d") == nil {
		t.Error("the added registry's service is not served")
	}

	// A new identity: "only-c" and "only-d" become one service.
	h.m.mu.Lock()
	h.m.opts.Key = func(s *registry.Service) string {
		return strings.TrimPrefix(strings.TrimPrefix(byName(s), "only-c"), "only-d") + "merged"
	}
	h.m.mu.Unlock()
	h.m.Rekey()
	snap = h.mustFlush()
	if s := find(snap, "only-c"); s == nil || len(s.Instances) != 3 {
		t.Errorf("after Rekey: %s; want only-c and only-d merged (3 instances)", describe(snap))
	}
}
