package rules

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// governanceState is what the producer made of the registries' rules last.
type governanceState struct {
	mode   string
	in     []*registry.Rule // the snapshot's rules they were made from
	rules  []Rule           // engine rules made of them (apply mode)
	status []GovRule
	err    string // the engine refused the rules (should not happen: each was compiled)
	done   bool   // translated at least once
}

// SetGovernanceMode sets governance.mode (off, report, apply); the next push re-translates.
func (p *Producer) SetGovernanceMode(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gov.mode != mode {
		p.gov.mode = mode
		if p.gov.done {
			p.setGovernance(p.gov.in, true)
		}
	}
}

// Governance is the producer that reads the snapshot's registry governance rules into the
// engine. It must come before translate: the rules it makes mark instances (a Dubbo tag rule's
// tags) in Prepare. It makes no resource itself.
func (p *Producer) Governance() bridge.Producer { return govProducer{p} }

type govProducer struct{ p *Producer }

func (g govProducer) Name() string { return "governance" }

func (g govProducer) Produce(snap *merge.Snapshot) *bridge.Production {
	g.p.mu.Lock()
	defer g.p.mu.Unlock()
	g.p.setGovernance(snap.Rules, false)
	return &bridge.Production{}
}

// setGovernance translates the registries' rules when they changed (an unchanged rule is the
// same pointer from one snapshot to the next) or when force (the mode changed).
func (p *Producer) setGovernance(rs []*registry.Rule, force bool) {
	if !force && p.gov.done && slices.Equal(rs, p.gov.in) {
		return
	}
	made, status := TranslateGovernance(rs, cmpOr(p.gov.mode, GovernanceReport))
	p.gov.in, p.gov.status, p.gov.done, p.gov.err = rs, status, true, ""
	if err := p.e.SetRules(append(slices.Clone(p.declared), made...)); err != nil {
		p.gov.err = err.Error()
		return
	}
	p.gov.rules = made
}

// GovStatus is /debug/governance: the mode and every registry rule with what became of it.
type GovStatus struct {
	Mode  string    `json:"mode"`
	Error string    `json:"error,omitempty"`
	Rules []GovRule `json:"rules"`
}

// GovernanceStatus returns the debug view; query limits it to rules whose key, registry or
// selected services contain it.
func (p *Producer) GovernanceStatus(query string) GovStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := GovStatus{Mode: cmpOr(p.gov.mode, GovernanceReport), Error: p.gov.err, Rules: []GovRule{}}
	for _, g := range p.gov.status {
		gs := govSpec(g.rule)
		g.Notes = slices.Clone(g.Notes)
		for src, en := range p.e.svcs {
			if en.in == nil || !gs.selects(en.in) {
				continue
			}
			g.Services = append(g.Services, src)
			if en.policy != nil && g.Rule != "" {
				for _, n := range en.policy.notes {
					if strings.Contains(n, "(rule "+g.Rule+")") {
						g.Notes = append(g.Notes, src+": "+n)
					}
				}
			}
		}
		slices.Sort(g.Services)
		if query != "" && !strings.Contains(g.Key, query) && g.Registry != query && !slices.ContainsFunc(g.Services, func(s string) bool { return strings.Contains(s, query) }) {
			continue
		}
		st.Rules = append(st.Rules, g)
	}
	slices.SortFunc(st.Rules, func(a, b GovRule) int {
		return cmp.Or(cmp.Compare(a.Registry, b.Registry), cmp.Compare(a.Key, b.Key))
	})
	return st
}

// GovernanceCounts are for metrics: rules by state, and untranslatable clauses.
func (p *Producer) GovernanceCounts() (byState map[string]int, problems int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byState = map[string]int{GovApplied: 0, GovWouldApply: 0, GovUntranslatable: 0, GovDisabled: 0, GovNothing: 0}
	for _, g := range p.gov.status {
		byState[g.State]++
		problems += len(g.Problems)
	}
	return byState, problems
}
