package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
	"github.com/mcp-bridge/mcp-bridge/state"
)

const (
	ruleRoot     = "/dubbo/config/dubbo"
	tagRuleYAML  = "configVersion: v3.0\nforce: false\nenabled: true\nkey: shop\ntags:\n  - name: gray\n    match:\n      - key: env\n        value:\n          exact: gray\n  - name: canary\n    addresses: [\"10.0.0.9:20880\"]\n"
	condRuleYAML = "configVersion: v3.0\nscope: service\nkey: com.example.Greeter\nenabled: true\nconditions:\n  - method=greet => region=eu\n"
	condKey      = "com.example.Greeter:1.0.0:g1"
)

var (
	tagKey  = registry.RuleKey{Kind: registry.RuleTag, Name: "shop"}
	condRK  = registry.RuleKey{Kind: registry.RuleCondition, Name: condKey}
	condSrc = ruleRoot + "/" + condKey + ".condition-router"
)

func setData(t testing.TB, c *zk.Conn, p, data string) {
	t.Helper()
	if _, err := c.Set(p, []byte(data), -1); err != nil {
		t.Fatalf("setting %s: %v", p, err)
	}
}

// wantRule waits until the sink holds rule k (check nil: holds none) and check passes on it.
func wantRule(r *runningAdapter, k registry.RuleKey, check func(*registry.Rule) error) func() error {
	return func() error {
		got := r.sink.Rule(k)
		if check == nil {
			if got != nil {
				return fmt.Errorf("rule %s still there", k)
			}
			return nil
		}
		if got == nil {
			return fmt.Errorf("no rule %s", k)
		}
		return check(got)
	}
}

func conditions(want ...string) func(*registry.Rule) error {
	return func(r *registry.Rule) error {
		if r.Condition == nil || strings.Join(r.Condition.Conditions, "|") != strings.Join(want, "|") {
			return fmt.Errorf("conditions %+v, want %v", r.Condition, want)
		}
		return nil
	}
}

// TestGovernanceRulesLive drives rules through a real ZooKeeper as Dubbo Admin writes them: read
// at start, changed, garbled (rejected, last good kept), emptied and deleted.
func TestGovernanceRulesLive(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	zktest.Create(t, admin, ruleRoot+"/shop.tag-router", []byte(tagRuleYAML), false)
	zktest.Create(t, admin, ruleRoot+"/dubbo.properties", []byte("dubbo.registry.address=zookeeper://x"), false) // no rule: not read
	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: -1})
	r.waitSynced(t)
	r.sink.Wait(t, 10*time.Second, "the tag rule", wantRule(r, tagKey, func(rule *registry.Rule) error {
		if rule.Tag == nil || len(rule.Tag.Tags) != 2 || rule.Tag.Tags[0].Match[0].Value.Exact != "gray" || rule.Source != ruleRoot+"/shop.tag-router" {
			return fmt.Errorf("tag rule %+v", rule)
		}
		return nil
	}))

	// A rule created later arrives through the root's child watch.
	zktest.Create(t, admin, condSrc, []byte(condRuleYAML), false)
	r.sink.Wait(t, 10*time.Second, "the condition rule", wantRule(r, condRK, conditions("method=greet => region=eu")))
	if got := r.sink.Rule(condRK); got.Service == nil || got.Service.Version != "1.0.0" || got.Service.Group != "g1" {
		t.Errorf("condition rule service %+v", got.Service)
	}

	// A change arrives through the node's data watch.
	setData(t, admin, condSrc, strings.Replace(condRuleYAML, "region=eu", "region=us", 1))
	r.sink.Wait(t, 10*time.Second, "the changed rule", wantRule(r, condRK, conditions("method=greet => region=us")))

	// A garbled edit is rejected; the last good version stays.
	upserts := r.sink.Count("upsert")
	setData(t, admin, condSrc, "conditions: [unclosed")
	r.sink.Wait(t, 10*time.Second, "the reject", func() error {
		if reason := r.rejects()[condSrc]; reason != dubbo.ReasonBadRule {
			return fmt.Errorf("rejects %v", r.rejects())
		}
		return nil
	})
	if err := wantRule(r, condRK, conditions("method=greet => region=us"))(); err != nil {
		t.Fatalf("after a garbled edit: %v", err)
	}
	if u := r.sink.Count("upsert"); u != upserts {
		t.Errorf("services upserted for a rule edit")
	}
	// Fixed again: the reject is withdrawn.
	setData(t, admin, condSrc, condRuleYAML)
	r.sink.Wait(t, 10*time.Second, "the fixed rule", wantRule(r, condRK, conditions("method=greet => region=eu")))
	if _, bad := r.rejects()[condSrc]; bad {
		t.Error("reject not withdrawn after the fix")
	}

	// Emptied data is no rule (Dubbo's removal); deleting the node removes the other.
	setData(t, admin, condSrc, "")
	r.sink.Wait(t, 10*time.Second, "the emptied rule removed", wantRule(r, condRK, nil))
	zktest.Delete(t, admin, ruleRoot+"/shop.tag-router")
	r.sink.Wait(t, 10*time.Second, "the deleted rule removed", wantRule(r, tagKey, nil))
}

// TestGovernanceRulesSurviveOutageAndRestart runs the ZooKeeper adapter into a real merger and
// state file: rules written at /dubbo/config/dubbo/<key>.tag-router and .condition-router appear
// in the merge snapshot; they stay while ZooKeeper is stopped; and a new bridge (merger, state
// file) started while ZooKeeper is still down serves them from the state file.
func TestGovernanceRulesSurviveOutageAndRestart(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	zktest.Create(t, admin, ruleRoot+"/shop.tag-router", []byte(tagRuleYAML), false)
	zktest.Create(t, admin, condSrc, []byte(condRuleYAML), false)
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.1.0.1", 20880, "")), nil, false)
	stateFile := filepath.Join(t.TempDir(), "state.json.gz")
	cfg := Config{Servers: []string{z.Addr()}, ResyncInterval: -1, ReconnectBackoff: 100 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond}

	b1 := startBridge(t, cfg, stateFile)
	b1.waitSnapshot(t, "both rules", hasRules("zk/com.example.Greeter:1.0.0:g1.condition-router zk/shop.tag-router"))

	z.Stop()
	b1.waitStatus(t, "the registry failed", func(s merge.RegistryStatus) error {
		if s.Connected || s.Rules == nil || s.Rules.Protection == nil || s.Rules.Protection.Reason != "failure" {
			return fmt.Errorf("status connected %v rules %+v", s.Connected, s.Rules)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // down for a while: nothing may be removed
	if got := ruleKeys(b1.last()); got != "zk/com.example.Greeter:1.0.0:g1.condition-router zk/shop.tag-router" {
		t.Fatalf("rules in the snapshot while ZooKeeper is down: %q", got)
	}
	b1.stop(t) // writes the state file on shutdown

	// A restart while ZooKeeper is still down: the rules come from the state file, stale.
	b2 := startBridge(t, cfg, stateFile)
	b2.waitSnapshot(t, "restored rules", hasRules("zk/com.example.Greeter:1.0.0:g1.condition-router zk/shop.tag-router"))
	snap := b2.last()
	if len(snap.Services) != 1 {
		t.Errorf("restored services %d, want 1", len(snap.Services))
	}
	if rule := snap.Rules[0]; rule.Condition == nil || rule.Condition.Conditions[0] != "method=greet => region=eu" {
		t.Errorf("restored condition rule %+v", rule)
	}
	if st := b2.status(t); st.Rules == nil || !st.Rules.Stale || st.Synced {
		t.Errorf("restored status %+v rules %+v; want stale rules, not synced", st, st.Rules)
	}

	// ZooKeeper back: the rules are confirmed (no longer stale) and follow changes again.
	z.Restart()
	b2.waitStatus(t, "the registry synced", func(s merge.RegistryStatus) error {
		if !s.Synced || s.Rules == nil || s.Rules.Stale {
			return fmt.Errorf("synced %v rules %+v", s.Synced, s.Rules)
		}
		return nil
	})
	admin2 := zktest.Session(t, z.Addr())
	zktest.Delete(t, admin2, ruleRoot+"/shop.tag-router")
	b2.waitSnapshot(t, "the deleted rule removed", hasRules("zk/com.example.Greeter:1.0.0:g1.condition-router"))
}

// bridge is the slice of the bridge these tests need: the adapter, the merger and the state
// file, wired as cmd/mcp-bridge wires them.
type bridge struct {
	m      *merge.Merger
	snaps  chan *merge.Snapshot
	latest *merge.Snapshot
	cancel context.CancelFunc
	done   chan struct{}
}

func startBridge(t *testing.T, cfg Config, stateFile string) *bridge {
	t.Helper()
	m, err := merge.New(merge.Options{Registries: []string{"zk"}, Key: func(s *registry.Service) string { return s.Key().String() },
		Debounce: merge.Debounce{Quiet: 20 * time.Millisecond}, Protection: merge.Protection{InitialSyncTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.New(state.Config{File: stateFile, Interval: 50 * time.Millisecond}, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store.RestoreAll([]state.Ref{{Name: "zk", Type: "zookeeper"}}, func(r state.Registry) {
		if r.Rules != nil {
			m.RestoreRules(r.Name, r.Rules)
		}
		m.Restore(r.Name, r.Services)
	})
	a, err := New(cfg, registryOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &bridge{m: m, snaps: make(chan *merge.Snapshot, 100), cancel: cancel, done: make(chan struct{})}
	go m.Run(ctx, func(s *merge.Snapshot) { b.snaps <- s })
	storeDone := make(chan struct{})
	go func() { defer close(storeDone); store.Run(ctx, stateSource{m}) }()
	adapterDone := make(chan struct{})
	go func() { defer close(adapterDone); _ = a.Run(ctx, m.Sink("zk")) }()
	go func() { <-storeDone; <-adapterDone; close(b.done) }()
	t.Cleanup(func() { b.stop(t) })
	return b
}

func (b *bridge) stop(t *testing.T) {
	b.cancel()
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		t.Error("bridge did not stop within 15s")
	}
}

func (b *bridge) last() *merge.Snapshot {
	for {
		select {
		case s := <-b.snaps:
			b.latest = s
		default:
			return b.latest
		}
	}
}

func (b *bridge) waitSnapshot(t *testing.T, what string, cond func(*merge.Snapshot) error) {
	t.Helper()
	if err := servers.Poll(30*time.Second, func() error {
		s := b.last()
		if s == nil {
			return errors.New("no snapshot yet")
		}
		return cond(s)
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (b *bridge) status(t *testing.T) merge.RegistryStatus {
	t.Helper()
	return b.m.Status()[0]
}

func (b *bridge) waitStatus(t *testing.T, what string, cond func(merge.RegistryStatus) error) {
	t.Helper()
	if err := servers.Poll(30*time.Second, func() error { return cond(b.status(t)) }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func ruleKeys(s *merge.Snapshot) string {
	var parts []string
	for _, r := range s.Rules {
		parts = append(parts, r.Registry+"/"+r.Key().String())
	}
	return strings.Join(parts, " ")
}

func hasRules(want string) func(*merge.Snapshot) error {
	return func(s *merge.Snapshot) error {
		if got := ruleKeys(s); got != want {
			return fmt.Errorf("rules %q, want %q", got, want)
		}
		return nil
	}
}

// stateSource is cmd/mcp-bridge's: the merger's last-known state, with the registry's type.
type stateSource struct{ m *merge.Merger }

func (s stateSource) Changes() <-chan struct{} { return s.m.Changes() }
func (s stateSource) Revision() (uint64, int)  { return s.m.Revision() }
func (s stateSource) Collect() []state.Registry {
	var out []state.Registry
	for _, lk := range s.m.LastKnown() {
		out = append(out, state.Registry{Name: lk.Registry, Type: "zookeeper", Services: lk.Services, Rules: lk.Rules})
	}
	return out
}
