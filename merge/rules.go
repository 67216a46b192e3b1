package merge

import (
	"reflect"
	"sort"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Governance rules are kept per registry beside its services, with the same two states (what
// the registry reports, what is served) and the same protection:
//
//   - Failure: while the registry is failed (Sink.Fail until the next Replace of services) its
//     served rules are frozen; rule changes that arrive are recorded and served when the failure
//     ends. When Protection.FailureHold withdraws its services, its rules are withdrawn too.
//   - Mass drop: a ReplaceRules keeping fewer than (1 - MaxDropRatio) of the rules served (so a
//     reconnecting registry that reports none of its rules) is held until the reported rules are
//     within the ratio again or Protection.DropHold passes. UpsertRules and DeleteRules are
//     served at once, as for services: an adapter sends them only for changes it saw happen.
//
// Rules of different registries never combine: two registries may hold a rule of the same key,
// and the snapshot carries both, each with its Registry. Readiness does not wait for rules: an
// adapter sends its rules with its first Replace.

// ruleState is one registry's rules. Guarded by Merger.mu.
type ruleState struct {
	served   map[registry.RuleKey]*registry.Rule
	reported map[registry.RuleKey]*registry.Rule
	// replaced: a ReplaceRules arrived in this run; until then restored rules are stale.
	replaced  bool
	restored  bool
	stale     bool
	dropSince time.Time // non-zero while a mass drop of rules is held
}

func newRuleState() ruleState {
	return ruleState{served: map[registry.RuleKey]*registry.Rule{}, reported: map[registry.RuleKey]*registry.Rule{}}
}

// ruleRef is a rule across registries.
type ruleRef struct {
	reg int // regState.order
	key registry.RuleKey
}

func (s *sink) ReplaceRules(rules []*registry.Rule) { s.m.replaceRules(s.r, rules) }
func (s *sink) UpsertRules(rules []*registry.Rule)  { s.m.upsertRules(s.r, rules) }
func (s *sink) DeleteRules(keys []registry.RuleKey) { s.m.deleteRules(s.r, keys) }

// normalizeRules stamps rules with their registry. Outside the lock: the merger owns them now.
func (m *Merger) normalizeRules(r *regState, rules []*registry.Rule) map[registry.RuleKey]*registry.Rule {
	out := make(map[registry.RuleKey]*registry.Rule, len(rules))
	for _, rule := range rules {
		if rule == nil {
			continue
		}
		if rule.Registry != r.name {
			rule.Registry = r.name
		}
		k := rule.Key()
		if _, dup := out[k]; dup {
			m.log.Warn("registry sent the same rule twice in one update; the last one counts", "registry", r.name, "rule", k.String())
		}
		out[k] = rule
	}
	return out
}

// equalRule compares rules by content (they are small and few).
func equalRule(a, b *registry.Rule) bool { return a == b || reflect.DeepEqual(a, b) }

func (m *Merger) replaceRules(r *regState, rules []*registry.Rule) {
	incoming := m.normalizeRules(r, rules)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	rs := &r.rules
	for k, rule := range incoming {
		if old := rs.reported[k]; old != nil && equalRule(old, rule) {
			incoming[k] = old // unchanged rules keep their pointer
		}
	}
	rs.reported = incoming
	rs.replaced, rs.stale = true, false
	if !r.failed && rs.dropSince.IsZero() && m.massDrop(len(rs.served), len(rs.reported)) {
		rs.dropSince = now
		m.log.Warn("registry reports far fewer governance rules than it did; holding its last-known rules",
			"registry", r.name, "served", len(rs.served), "reported", len(rs.reported),
			"maxDropRatio", m.opts.Protection.MaxDropRatio, "hold", m.opts.Protection.DropHold.String())
	}
	m.reconcileRules(r, now)
	m.endCall(r)
}

func (m *Merger) upsertRules(r *regState, rules []*registry.Rule) {
	incoming := m.normalizeRules(r, rules)
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := &r.rules
	var changed []registry.RuleKey
	for k, rule := range incoming {
		if old := rs.reported[k]; old != nil && equalRule(old, rule) {
			continue
		}
		rs.reported[k] = rule
		changed = append(changed, k)
	}
	m.propagateRules(r, changed, m.clock.Now())
	m.endCall(r)
}

func (m *Merger) deleteRules(r *regState, keys []registry.RuleKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := &r.rules
	var changed []registry.RuleKey
	for _, k := range keys {
		if _, ok := rs.reported[k]; ok {
			delete(rs.reported, k)
			changed = append(changed, k)
		}
	}
	m.propagateRules(r, changed, m.clock.Now())
	m.endCall(r)
}

// propagateRules serves changed rules unless protection holds them.
func (m *Merger) propagateRules(r *regState, keys []registry.RuleKey, now time.Time) {
	switch {
	case len(keys) == 0:
	case r.failed:
		// Frozen until the Replace that ends the failure.
	case !r.rules.dropSince.IsZero():
		m.reconcileRules(r, now)
	default:
		for _, k := range keys {
			m.setServedRule(r, k, r.rules.reported[k], now)
		}
	}
}

// reconcileRules serves the reported rules unless protection holds them; it releases a held
// drop once the rules are within the ratio again or the hold has lasted DropHold. The Replace of
// services that ends a failure calls it too.
func (m *Merger) reconcileRules(r *regState, now time.Time) {
	rs := &r.rules
	if r.failed {
		return
	}
	if !rs.dropSince.IsZero() {
		drop := m.massDrop(len(rs.served), len(rs.reported))
		if drop && now.Before(rs.dropSince.Add(m.opts.Protection.DropHold)) {
			return
		}
		if drop {
			m.log.Warn("held drop of governance rules accepted after the hold time: serving what the registry reports",
				"registry", r.name, "served", len(rs.served), "reported", len(rs.reported), "heldFor", now.Sub(rs.dropSince).String())
		} else {
			m.log.Info("registry's governance rules are back within the drop ratio; protection released",
				"registry", r.name, "served", len(rs.served), "reported", len(rs.reported))
		}
		rs.dropSince = time.Time{}
	}
	m.applyReportedRules(r, now)
}

func (m *Merger) applyReportedRules(r *regState, now time.Time) {
	for k := range r.rules.served {
		if _, ok := r.rules.reported[k]; !ok {
			m.setServedRule(r, k, nil, now)
		}
	}
	for k, rule := range r.rules.reported {
		m.setServedRule(r, k, rule, now)
	}
}

// setServedRule serves rule as r's rule k (nil: none) and marks the rules dirty.
func (m *Merger) setServedRule(r *regState, k registry.RuleKey, rule *registry.Rule, now time.Time) {
	old, had := r.rules.served[k]
	if had && old == rule || !had && rule == nil {
		return
	}
	if rule == nil {
		delete(r.rules.served, k)
	} else {
		r.rules.served[k] = rule
	}
	m.revision++
	m.rulesDirty = true
	if m.firstEvent.IsZero() {
		m.firstEvent = now
	}
	m.lastEvent = now
	m.touched = true
}

// expireRuleHold releases r's held rule drop when its time is up (under m.mu) and returns when
// it ends otherwise (zero: no hold).
func (m *Merger) expireRuleHold(r *regState, now time.Time) time.Time {
	if r.failed || r.rules.dropSince.IsZero() {
		return time.Time{}
	}
	if until := r.rules.dropSince.Add(m.opts.Protection.DropHold); now.Before(until) {
		return until
	}
	m.reconcileRules(r, now)
	m.endCall(r)
	return time.Time{}
}

// withdrawRules drops a registry's rules once FailureHold withdrew its services. Under m.mu.
func (m *Merger) withdrawRules(r *regState, now time.Time) {
	r.rules.dropSince = time.Time{}
	r.rules.reported = map[registry.RuleKey]*registry.Rule{}
	m.applyReportedRules(r, now)
}

// RestoreRules seeds a registry's last-known governance rules (from a state file), as Restore
// does its services: they are served, stale, until the registry's first ReplaceRules, which is
// compared with them like any ReplaceRules. Ignored after that ReplaceRules or for an
// undeclared registry. Call it before the adapters start. The merger takes ownership of rules.
func (m *Merger) RestoreRules(name string, rules []*registry.Rule) {
	m.mu.Lock()
	r := m.byName[name]
	m.mu.Unlock()
	if r == nil {
		m.log.Warn("restored rules for a registry that is not configured are ignored", "registry", name)
		return
	}
	incoming := m.normalizeRules(r, rules)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.rules.replaced {
		m.log.Info("restored rules ignored: the registry has already sent its rules", "registry", name)
		return
	}
	r.rules.reported = incoming
	r.rules.stale, r.rules.restored = true, true
	m.applyReportedRules(r, m.clock.Now()) // even while failed: the last-known state being seeded
	m.log.Info("restored last-known governance rules; stale until the registry sends its rules", "registry", name, "rules", len(r.rules.served))
	m.endCall(r)
}

// takeRules rebuilds the snapshot's rule list if a served rule changed since the last snapshot
// and returns how many rules were added, changed or removed. Under m.mu.
func (m *Merger) takeRules() int {
	if !m.rulesDirty {
		return 0
	}
	m.rulesDirty = false
	next := make(map[ruleRef]*registry.Rule, len(m.ruleSet))
	for _, r := range m.regs {
		for k, rule := range r.rules.served {
			next[ruleRef{reg: r.order, key: k}] = rule
		}
	}
	changed := 0
	for ref, rule := range next {
		if m.ruleSet[ref] != rule {
			changed++
		}
	}
	for ref := range m.ruleSet {
		if _, ok := next[ref]; !ok {
			changed++
		}
	}
	if changed == 0 {
		return 0
	}
	refs := make([]ruleRef, 0, len(next))
	for ref := range next {
		refs = append(refs, ref)
	}
	// Name, kind, then registry in configuration order (the order duplicates follow).
	sort.Slice(refs, func(i, j int) bool {
		a, b := refs[i], refs[j]
		if a.key.Name != b.key.Name {
			return a.key.Name < b.key.Name
		}
		if a.key.Kind != b.key.Kind {
			return a.key.Kind < b.key.Kind
		}
		return a.reg < b.reg
	})
	list := make([]*registry.Rule, len(refs))
	for i, ref := range refs {
		list[i] = next[ref]
	}
	m.ruleSet, m.ruleList = next, list
	return changed
}

// RuleStatus is one served rule as /debug/registries shows it.
type RuleStatus struct {
	Name    string            `json:"name"`
	Kind    registry.RuleKind `json:"kind"`
	Source  string            `json:"source,omitempty"`
	Summary string            `json:"summary"`
}

// RulesStatus is a registry's governance rules on /debug/registries.
type RulesStatus struct {
	// Served counts the rules served; Reported what the registry last reported. They differ
	// while protection holds (Protection says why).
	Served   int `json:"served"`
	Reported int `json:"reported"`
	// Stale: the served rules were restored from a previous run and not yet confirmed.
	Stale      bool              `json:"stale,omitempty"`
	Protection *ProtectionStatus `json:"protection,omitempty"`
	// Rules are the served rules (the first maxRuleDetails), sorted by name and kind.
	Rules []RuleStatus `json:"rules,omitempty"`
}

// maxRuleDetails bounds the rules listed per registry on the status page.
const maxRuleDetails = 500

// rulesStatus reports r's rules; nil for a registry that never had any. Under m.mu.
func (m *Merger) rulesStatus(r *regState) *RulesStatus {
	rs := &r.rules
	if !rs.replaced && !rs.restored && len(rs.served) == 0 {
		return nil
	}
	s := &RulesStatus{Served: len(rs.served), Reported: len(rs.reported), Stale: rs.stale}
	switch {
	case r.failed && !r.withdrawn:
		s.Protection = &ProtectionStatus{Reason: "failure", Since: r.failSince}
		if h := m.opts.Protection.FailureHold; h > 0 {
			s.Protection.Until = r.failSince.Add(h)
		}
	case !r.failed && !rs.dropSince.IsZero():
		s.Protection = &ProtectionStatus{Reason: "mass-drop", Since: rs.dropSince, Until: rs.dropSince.Add(m.opts.Protection.DropHold)}
	}
	keys := make([]registry.RuleKey, 0, len(rs.served))
	for k := range rs.served {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Name != keys[j].Name {
			return keys[i].Name < keys[j].Name
		}
		return keys[i].Kind < keys[j].Kind
	})
	for _, k := range keys[:min(len(keys), maxRuleDetails)] {
		rule := rs.served[k]
		s.Rules = append(s.Rules, RuleStatus{Name: k.Name, Kind: k.Kind, Source: rule.Source, Summary: rule.Summary()})
	}
	return s
}

// lastKnownRules returns r's served rules (nil when its rules are unknown: never sent nor
// restored, so nothing is saved that could replace a later restore). Under m.mu.
func (r *regState) lastKnownRules() []*registry.Rule {
	if !r.rules.replaced && !r.rules.restored {
		return nil
	}
	out := make([]*registry.Rule, 0, len(r.rules.served))
	for _, rule := range r.rules.served {
		out = append(out, rule)
	}
	return out
}
