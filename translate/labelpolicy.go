package translate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Label modes (Options.Labels.Mode): which registry labels an endpoint carries.
const (
	// LabelModeRouting keeps only what routing can use: the allowlist (DefaultRoutingLabels), the
	// keys in labels.keep, and every key routing references (SetRoutedLabels). The
	// default: the rest (Dubbo's anyhost, dubbo, release, side, generic, ...) is most of each
	// endpoint's bytes, and Istiod re-reads every byte on every push (docs/scale.md#lean-endpoints).
	LabelModeRouting = "routing"
	// LabelModeAll keeps every label except those in labels.drop (the behaviour before lean
	// endpoints).
	LabelModeAll = "all"
)

// LabelOptions choose which registry labels endpoints carry (translate.labels).
type LabelOptions struct {
	// Mode is "routing" (default) or "all".
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// Keep adds keys to the routing allowlist. A trailing "*" matches a prefix.
	Keep []string `yaml:"keep" json:"keep,omitempty"`
	// Drop removes keys in either mode, unless a rule references them. A trailing "*" matches a
	// prefix. Default DefaultDropLabels(); an explicit empty list drops nothing. The older
	// translate.dropLabels is an alias for it.
	Drop []string `yaml:"drop" json:"drop,omitempty"`
}

// DefaultRoutingLabels is the routing mode's allowlist: the keys the registries' conventions
// route by (docs/registries.md#labels): Dubbo's application (as "app"), Dubbo 3's instance
// version, group, tags (dubbo.tag as the adapters rename it, and as written), full-link gray
// lanes, environments and localities. Keys a rule references are kept in addition, always.
func DefaultRoutingLabels() []string {
	return []string{
		"app", "application", "version", "group",
		"tag", "dubbo.tag", "dubbo-tag",
		"lane", "env", "environment",
		"region", "zone", "subzone", "idc", "unit",
		"topology.kubernetes.io/*",
	}
}

// keySet matches label keys exactly or, for an entry ending in "*", by prefix.
type keySet struct {
	exact    map[string]bool
	prefixes []string
}

func newKeySet(keys ...[]string) keySet {
	s := keySet{exact: map[string]bool{}}
	for _, list := range keys {
		for _, k := range list {
			if pre, ok := strings.CutSuffix(k, "*"); ok {
				s.prefixes = append(s.prefixes, pre)
			} else {
				s.exact[k] = true
			}
		}
	}
	return s
}

func (s keySet) match(k string) bool {
	if s.exact[k] {
		return true
	}
	for _, pre := range s.prefixes {
		if strings.HasPrefix(k, pre) {
			return true
		}
	}
	return false
}

// labelPolicy decides which registry label keys are emitted. routed, the keys the rules
// reference, is replaced between Translate calls (SetRoutedLabels); the rest is fixed.
type labelPolicy struct {
	all    bool
	keep   keySet
	drop   keySet
	routed map[string]bool
}

func newPolicy(o LabelOptions, dropLabels []string) *labelPolicy {
	drop := o.Drop
	if drop == nil {
		drop = dropLabels
	}
	return &labelPolicy{all: o.Mode == LabelModeAll, keep: newKeySet(DefaultRoutingLabels(), o.Keep),
		drop: newKeySet(drop), routed: map[string]bool{}}
}

// endpoint reports whether an endpoint (instance) label is emitted, by its key as the registry
// gave it (raw) and as it would be emitted (key, the sanitised form; the same for a valid key). A
// key routing references always is, whatever drop says, since a subset selecting a missing label
// matches nothing; otherwise drop matching either form drops it.
func (p *labelPolicy) endpoint(raw, key string) bool {
	if p.routed[raw] || p.routed[key] {
		return true
	}
	if p.drop.match(raw) || p.drop.match(key) {
		return false
	}
	return p.all || p.keep.match(raw) || p.keep.match(key)
}

// service reports whether a ServiceEntry label is emitted: one set per service, so cheap, and
// rule selectors match service labels: only drop applies.
func (p *labelPolicy) service(raw, key string) bool {
	return p.routed[raw] || p.routed[key] || !(p.drop.match(raw) || p.drop.match(key))
}

// SetRoutedLabels sets the label keys that routing references (the pipeline passes the rules'
// keys, rules.Producer.LabelKeys, and those of static DestinationRule subsets): they are never
// dropped. When the set changes, the services carrying a key whose fate changes are
// prepared again by the next Translate, so a rule arriving later makes its labels appear (and a
// rule going away lets them go). Call it between Translate calls, from the same goroutine.
func (t *Translator) SetRoutedLabels(keys []string) {
	if len(keys) == len(t.policy.routed) && !slices.ContainsFunc(keys, func(k string) bool { return !t.policy.routed[k] }) {
		return
	}
	next := make(map[string]bool, len(keys))
	for _, k := range keys {
		next[k] = true
	}
	if t.relabel == nil {
		t.relabel = map[string]bool{}
	}
	for k := range next {
		if !t.policy.routed[k] {
			t.relabel[k] = true
		}
	}
	for k := range t.policy.routed {
		if !next[k] {
			t.relabel[k] = true
		}
	}
	t.policy.routed = next
}

// carries reports whether s has a label (its own or an instance's) whose key, as given or as
// sanitised, is in keys.
func carries(s *registry.Service, keys map[string]bool) bool {
	has := func(labels map[string]string) bool {
		for k := range labels {
			if keys[k] {
				return true
			}
			if sk, ok := SanitizeLabelKey(k); ok && sk != k && keys[sk] {
				return true
			}
		}
		return false
	}
	if has(s.Labels) {
		return true
	}
	for i := range s.Instances {
		if has(s.Instances[i].Labels) {
			return true
		}
	}
	return false
}

// LabelStats is what the label policy did to the current output, for /debug/config and metrics.
type LabelStats struct {
	Mode string `json:"mode"`
	// Routed are the keys kept because a rule references them.
	Routed []string `json:"routed"`
	// DroppedKeys is how many distinct keys were dropped by the policy.
	DroppedKeys int `json:"droppedKeys"`
	// Dropped lists, per key, how many endpoints are served without it, the largest first, at
	// most MaxDroppedKeysShown keys (the rest summed under OtherKeys).
	Dropped []KeyCount `json:"dropped"`
}

// KeyCount is one label key and a count.
type KeyCount struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// MaxDroppedKeysShown bounds LabelStats.Dropped (and so the metric's key label): registry label
// keys are arbitrary text, chosen by whoever registers.
const MaxDroppedKeysShown = 20

// OtherKeys is the key under which the counts beyond MaxDroppedKeysShown are summed.
const OtherKeys = "_other"

// LabelStats returns the label policy's effect on the last Translate. Safe to call concurrently
// with Translate.
func (t *Translator) LabelStats() LabelStats {
	if s := t.stats.Load(); s != nil {
		return *s
	}
	return LabelStats{Mode: t.opts.Labels.Mode, Routed: []string{}, Dropped: []KeyCount{}}
}

// publishStats rebuilds the stats from the per-key drop counts.
func (t *Translator) publishStats() {
	all := make([]KeyCount, 0, len(t.dropCounts))
	for k, n := range t.dropCounts {
		all = append(all, KeyCount{k, n})
	}
	slices.SortFunc(all, func(a, b KeyCount) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key)) })
	s := &LabelStats{Mode: t.opts.Labels.Mode, Routed: slices.Sorted(maps.Keys(t.policy.routed)), DroppedKeys: len(all)}
	if len(all) > MaxDroppedKeysShown {
		other := 0
		for _, kc := range all[MaxDroppedKeysShown:] {
			other += kc.Count
		}
		all = append(all[:MaxDroppedKeysShown], KeyCount{OtherKeys, other})
	}
	s.Dropped = all
	t.stats.Store(s)
}

// countDrops adds (sign 1) or removes (sign -1) a prepared service's dropped keys.
func (t *Translator) countDrops(p *prepared, sign int) {
	for _, kc := range p.dropped {
		t.dropCounts[kc.Key] += sign * kc.Count
		if t.dropCounts[kc.Key] <= 0 {
			delete(t.dropCounts, kc.Key)
		}
	}
	if len(p.dropped) > 0 {
		t.statsDirty = true
	}
}

// validateLabels checks translate.labels and its alias dropLabels.
func (o Options) validateLabels(add func(format string, a ...any)) {
	switch o.Labels.Mode {
	case LabelModeRouting, LabelModeAll:
	default:
		add("labels.mode: must be %q or %q, got %q", LabelModeRouting, LabelModeAll, o.Labels.Mode)
	}
	if o.Labels.Drop != nil && o.DropLabels != nil {
		add("dropLabels: is an alias of labels.drop; set one of them, not both")
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"labels.keep", o.Labels.Keep}, {"labels.drop", o.Labels.Drop}, {"dropLabels", o.DropLabels}} {
		for i, k := range l.list {
			if strings.TrimSuffix(k, "*") == "" {
				add("%s[%d]: must not be empty", l.key, i)
			}
		}
	}
}

// Notices are remarks on options that are valid but deserve a word (mcp-bridge validate prints
// them): a deprecated alias in use.
func (o Options) Notices() []string {
	var out []string
	if o.DropLabels != nil {
		out = append(out, fmt.Sprintf("translate.dropLabels is an alias of translate.labels.drop (mode %s); prefer labels.drop", cmp.Or(o.Labels.Mode, LabelModeRouting)))
	}
	return out
}
