package merge

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// tagRule builds a fresh tag rule for application app with the given tag names (the sink takes
// ownership, so every call builds new objects).
func tagRule(app string, tags ...string) *registry.Rule {
	r := &registry.Rule{Kind: registry.RuleTag, Name: app, Scope: registry.ScopeApplication, Application: app,
		Enabled: true, Runtime: true, Tag: &registry.TagRule{Tags: []registry.Tag{}}, Raw: "tags: " + strings.Join(tags, ",")}
	for _, t := range tags {
		r.Tag.Tags = append(r.Tag.Tags, registry.Tag{Name: t, Addresses: []string{"10.0.0.1:20880"}})
	}
	return r
}

func condRule(iface string, conds ...string) *registry.Rule {
	return &registry.Rule{Kind: registry.RuleCondition, Name: iface + "::", Scope: registry.ScopeService,
		Service: &registry.RuleService{Interface: iface}, Enabled: true, Runtime: true,
		Condition: &registry.ConditionRule{Conditions: conds}, Raw: strings.Join(conds, ";")}
}

// ruleNames renders a snapshot's rules as "registry/name.kind" in snapshot order.
func ruleNames(snap *Snapshot) string {
	var parts []string
	for _, r := range snap.Rules {
		parts = append(parts, r.Registry+"/"+r.Key().String())
	}
	return strings.Join(parts, " ")
}

func TestRulesInSnapshotSortedWithPointerIdentity(t *testing.T) {
	h := newHarness(t, Options{}, "zk", "nacos")
	h.sink("nacos").Replace(nil)
	h.sink("nacos").ReplaceRules([]*registry.Rule{tagRule("shop", "gray")})
	h.sink("zk").ReplaceRules([]*registry.Rule{tagRule("shop", "blue"), condRule("com.A", "=> a=b")})
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 1)...)})
	snap := h.mustFlush()
	// Name, kind, then registry in configuration order (zk before nacos).
	if got, want := ruleNames(snap), "zk/com.A::.condition-router zk/shop.tag-router nacos/shop.tag-router"; got != want {
		t.Fatalf("rules %q, want %q", got, want)
	}
	if snap.RulesChanged != 3 {
		t.Errorf("RulesChanged %d, want 3", snap.RulesChanged)
	}
	first := snap.Rules

	// The same content again keeps every pointer and emits nothing.
	h.sink("zk").ReplaceRules([]*registry.Rule{tagRule("shop", "blue"), condRule("com.A", "=> a=b")})
	h.noSnapshot()

	// One rule changes: a snapshot with only it new; the others keep their pointers.
	h.sink("zk").UpsertRules([]*registry.Rule{condRule("com.A", "=> a=c")})
	snap = h.mustFlush()
	if snap.RulesChanged != 1 || snap.Changed != 0 {
		t.Fatalf("RulesChanged %d Changed %d; want 1, 0", snap.RulesChanged, snap.Changed)
	}
	if snap.Rules[0] == first[0] || snap.Rules[0].Condition.Conditions[0] != "=> a=c" {
		t.Errorf("changed rule not new: %+v", snap.Rules[0])
	}
	if snap.Rules[1] != first[1] || snap.Rules[2] != first[2] {
		t.Error("unchanged rules lost their pointer identity")
	}
	// Services unchanged too.
	if find(snap, "orders") != find(h.last, "orders") {
		t.Error("service pointer changed")
	}

	h.sink("zk").DeleteRules([]registry.RuleKey{{Kind: registry.RuleTag, Name: "shop"}})
	if got := ruleNames(h.mustFlush()); got != "zk/com.A::.condition-router nacos/shop.tag-router" {
		t.Errorf("after delete %q", got)
	}
}

func TestRulesFrozenWhileFailedThenRecovered(t *testing.T) {
	h := newHarness(t, Options{}, "zk")
	zk := h.sink("zk")
	zk.ReplaceRules([]*registry.Rule{tagRule("shop", "gray"), condRule("com.A", "=> a=b")})
	zk.Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	h.mustFlush()

	zk.Fail(errors.New("session expired"))
	// A reconnecting adapter may report no rules at all: nothing may shift while failed.
	zk.ReplaceRules(nil)
	zk.DeleteRules([]registry.RuleKey{{Kind: registry.RuleTag, Name: "shop"}})
	zk.UpsertRules([]*registry.Rule{condRule("com.B", "=> x=y")})
	h.noSnapshot()
	st := h.status("zk").Rules
	if st == nil || st.Served != 2 || st.Reported != 1 || st.Protection == nil || st.Protection.Reason != "failure" {
		t.Fatalf("rules status while failed %+v", st)
	}
	if lk := h.m.LastKnown(); len(lk) != 1 || len(lk[0].Rules) != 2 {
		t.Fatalf("last-known rules while failed: %+v", lk)
	}

	// Recovery: rules first, then the Replace that ends the failure; both are served together.
	zk.ReplaceRules([]*registry.Rule{tagRule("shop", "gray"), condRule("com.B", "=> x=y")})
	h.noSnapshot()
	zk.Replace([]*registry.Service{svc("orders", addrs(1, 2)...)})
	if got := ruleNames(h.mustFlush()); got != "zk/com.B::.condition-router zk/shop.tag-router" {
		t.Errorf("after recovery %q", got)
	}
}

func TestRulesMassDropHeldUntilConfirmedOrHoldPasses(t *testing.T) {
	h := newHarness(t, Options{Protection: Protection{DropHold: time.Minute}}, "zk")
	zk := h.sink("zk")
	zk.ReplaceRules([]*registry.Rule{tagRule("a", "t"), tagRule("b", "t"), tagRule("c", "t")})
	zk.Replace(nil)
	h.mustFlush()

	// A full read that suddenly has none of the rules is held...
	zk.ReplaceRules(nil)
	h.noSnapshot()
	st := h.status("zk").Rules
	if st.Protection == nil || st.Protection.Reason != "mass-drop" || st.Served != 3 {
		t.Fatalf("rules status %+v; want a held mass drop serving 3", st)
	}
	// ...even while services are fine (their own protection is separate).
	if p := h.status("zk").Protection; p != nil {
		t.Errorf("service protection %+v; want none", p)
	}
	// A later full read within the ratio releases it at once.
	zk.ReplaceRules([]*registry.Rule{tagRule("a", "t"), tagRule("b", "t")})
	if got := ruleNames(h.mustFlush()); got != "zk/a.tag-router zk/b.tag-router" {
		t.Fatalf("after confirmation %q", got)
	}

	// A drop that persists is served after DropHold.
	zk.ReplaceRules(nil)
	h.noSnapshot()
	h.clock.Advance(time.Minute)
	h.expire()
	snap := h.mustFlush()
	if len(snap.Rules) != 0 || snap.RulesChanged != 2 {
		t.Errorf("after the hold: rules %q changed %d; want none, 2", ruleNames(snap), snap.RulesChanged)
	}
	// Deletions seen as they happen are served at once, without a hold.
	zk.UpsertRules([]*registry.Rule{tagRule("a", "t")})
	h.mustFlush()
	zk.DeleteRules([]registry.RuleKey{{Kind: registry.RuleTag, Name: "a"}})
	if snap := h.mustFlush(); len(snap.Rules) != 0 {
		t.Errorf("delete not served: %q", ruleNames(snap))
	}
}

func TestRulesWithdrawnWithServicesAfterFailureHold(t *testing.T) {
	h := newHarness(t, Options{Protection: Protection{FailureHold: time.Minute}}, "zk")
	h.sink("zk").ReplaceRules([]*registry.Rule{tagRule("a", "t")})
	h.sink("zk").Replace([]*registry.Service{svc("orders", addrs(1, 1)...)})
	h.mustFlush()
	h.sink("zk").Fail(errors.New("down"))
	h.clock.Advance(time.Minute)
	h.expire()
	snap := h.mustFlush()
	if len(snap.Rules) != 0 || len(snap.Services) != 0 {
		t.Errorf("after the failure hold: rules %q services %q; want both withdrawn", ruleNames(snap), describe(snap))
	}
}

func TestRestoredRulesStaleUntilReplaced(t *testing.T) {
	h := newHarness(t, Options{}, "zk", "file")
	h.m.Restore("zk", []*registry.Service{svc("orders", addrs(1, 1)...)})
	h.m.RestoreRules("zk", []*registry.Rule{tagRule("shop", "gray")})
	h.m.RestoreRules("nope", []*registry.Rule{tagRule("x")}) // undeclared: ignored
	h.sink("file").Replace(nil)
	snap := h.mustFlush()
	if got := ruleNames(snap); got != "zk/shop.tag-router" {
		t.Fatalf("restored rules %q", got)
	}
	if st := h.status("zk").Rules; st == nil || !st.Stale || len(st.Rules) != 1 || st.Rules[0].Summary == "" {
		t.Errorf("status %+v; want one stale rule with a summary", st)
	}
	// A registry without rules shows none and saves none (unknown, not empty).
	if st := h.status("file").Rules; st != nil {
		t.Errorf("file registry rules status %+v, want nil", st)
	}
	for _, lk := range h.m.LastKnown() {
		if lk.Registry == "file" && lk.Rules != nil {
			t.Errorf("file registry saves rules %v", lk.Rules)
		}
	}
	// A restored state the registry no longer has in full is held like a mass drop.
	h.sink("zk").ReplaceRules(nil)
	h.noSnapshot()
	if st := h.status("zk").Rules; st.Stale || st.Protection == nil || st.Protection.Reason != "mass-drop" {
		t.Errorf("status %+v; want confirmed (not stale) and held", st)
	}
	// RestoreRules after the registry sent its rules is ignored.
	h.m.RestoreRules("zk", []*registry.Rule{tagRule("other")})
	if st := h.status("zk").Rules; st.Reported != 0 {
		t.Errorf("late restore changed the reported rules: %+v", st)
	}
}

func TestRuleChangesAdvanceRevision(t *testing.T) {
	h := newHarness(t, Options{}, "zk")
	h.sink("zk").Replace(nil)
	rev, _ := h.m.Revision()
	h.sink("zk").ReplaceRules([]*registry.Rule{tagRule("a", "t")})
	if r, _ := h.m.Revision(); r == rev {
		t.Error("a new rule did not advance the revision: the state file would not save it")
	}
	select {
	case <-h.m.Changes():
	default:
		t.Error("no Changes signal for a rule change")
	}
}
