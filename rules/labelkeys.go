package rules

import (
	"maps"
	"slices"
	"strings"
)

// LabelKeys returns, sorted, every instance label key the rules (declared, and the registries'
// governance rules the engine holds) select endpoints by: subset labels, canary stable/canary
// labels, the tag and lane labels (with the tag label's alias), condition and mesh rule subset
// labels, locality failover priority labels, and selector labels. translate keeps these on
// endpoints whatever its label mode (translate.Translator.SetRoutedLabels): a subset selecting
// a label that is not emitted would match nothing. The result is cached until the rules change.
func (e *Engine) LabelKeys() []string {
	if e.keys != nil && e.keysGen == e.gen {
		return e.keys
	}
	set := map[string]bool{}
	add := func(keys ...string) {
		for _, k := range keys {
			if k != "" {
				set[k] = true
			}
		}
	}
	for _, c := range e.rules {
		s := &c.Spec
		add(slices.Collect(maps.Keys(s.Selector.Labels))...)
		if s.Subsets != nil {
			add(s.Subsets.Labels...)
		}
		if s.Canary != nil {
			add(slices.Collect(maps.Keys(s.Canary.Stable))...)
			add(slices.Collect(maps.Keys(s.Canary.Canary))...)
		}
		if s.TagRouting != nil {
			add(s.TagRouting.Label, labelAlias(s.TagRouting.Label))
		}
		if s.Lanes != nil {
			add(s.Lanes.Label)
		}
		if s.Locality != nil {
			for _, p := range s.Locality.FailoverPriority {
				k, _, _ := strings.Cut(p, "=") // "key" or "key=value"
				add(k)
			}
		}
		if s.Conditions != nil {
			for _, ns := range s.Conditions.Subsets {
				add(slices.Collect(maps.Keys(ns.Labels))...)
			}
			for _, r := range s.Conditions.Routes {
				for _, d := range r.Dests {
					add(slices.Collect(maps.Keys(d.Labels))...)
				}
			}
		}
	}
	e.keys, e.keysGen = slices.Sorted(maps.Keys(set)), e.gen
	return e.keys
}

// LabelKeys is Engine.LabelKeys under the producer's lock.
func (p *Producer) LabelKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.e.LabelKeys()
}
