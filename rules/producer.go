package rules

import (
	"slices"
	"sync"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Producer is the engine as a bridge producer. It must come after the translate producer it
// reads (Output.Hosts of the same push), and that producer must run Prepare
// (bridge.TranslateWith(t, p.Prepare)). Its methods are safe for concurrent use: rules are
// replaced from the rule-file watcher while the bridge pushes.
type Producer struct {
	mu   sync.Mutex
	e    *Engine
	tr   *bridge.TranslateProducer
	last Result

	declared []Rule          // the operator's rules (SetRules)
	gov      governanceState // the registries' rules (governance.go)
}

// NewProducer wraps an engine.
func NewProducer(e *Engine) *Producer { return &Producer{e: e} }

// Follow sets the translate producer whose output the next pushes read (a configuration reload
// makes a new one).
func (p *Producer) Follow(tr *bridge.TranslateProducer) {
	p.mu.Lock()
	p.tr = tr
	p.mu.Unlock()
}

// Name is "rules".
func (p *Producer) Name() string { return "rules" }

// Prepare is Engine.Prepare under the producer's lock.
func (p *Producer) Prepare(services []*registry.Service) []*registry.Service {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.e.Prepare(services)
}

// Produce evaluates the rules against the snapshot.
func (p *Producer) Produce(snap *merge.Snapshot) *bridge.Production {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tr == nil {
		return &bridge.Production{}
	}
	p.last = p.e.Evaluate(snap.Services, p.tr.Last())
	return &bridge.Production{Resources: p.last.Resources, Invalid: p.last.Invalid, Warnings: p.last.Warnings}
}

// SetRules replaces the rules; the caller then pushes again (bridge.Reconfigure) to apply them.
func (p *Producer) SetRules(rs []Rule) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.e.SetRules(append(slices.Clone(rs), p.gov.rules...)); err != nil {
		return err
	}
	p.declared = rs
	return nil
}

// Status is the /debug/rules view: the rules in precedence order, conflicts, and an explanation
// of every service some rule selects.
type Status struct {
	Rules     []RuleInfo    `json:"rules"`
	Conflicts []Conflict    `json:"conflicts"`
	Services  []Explanation `json:"services"`
}

// RuleInfo is one loaded rule.
type RuleInfo struct {
	Name        string   `json:"name"`
	Origin      string   `json:"origin"`
	Priority    int      `json:"priority"`
	Specificity int      `json:"specificity"`
	Sections    []string `json:"sections"`
}

// Status returns the debug view; query limits it to services with that host or source.
func (p *Producer) Status(query string) Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Conflicts: p.last.Conflicts, Services: p.e.Explain(query)}
	for _, c := range p.e.rules {
		ri := RuleInfo{Name: c.Name, Origin: c.Origin, Priority: c.Priority, Specificity: c.specificity}
		for _, s := range sections {
			if c.has(s) {
				ri.Sections = append(ri.Sections, s)
			}
		}
		st.Rules = append(st.Rules, ri)
	}
	return st
}

// Counts are for metrics: rules loaded, services selected, conflicts, invalid resources.
func (p *Producer) Counts() (rules, services, conflicts, invalid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, en := range p.e.svcs {
		if len(en.rules) > 0 {
			services++
		}
	}
	return len(p.e.rules), services, len(p.last.Conflicts), len(p.last.Invalid)
}
