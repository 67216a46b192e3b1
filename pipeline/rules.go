package pipeline

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/rules"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// producers lists the bridge's resource producers in order of precedence: generated resources
// win a name over the operator's static ones. The governance producer reads the registries'
// governance rules into the rules engine first (it makes no resource). The rules engine comes after translate, whose
// output (hosts and ports) it reads in the same push, and marks instances before translate runs.
func producers(tr *translate.Translator, rp *rules.Producer, sp *rules.ScopeProducer, static []*istio.Resource) []bridge.Producer {
	routed := routedKeys(rp, staticLabelKeys(static))
	tp := bridge.TranslateWith(tr, func(ss []*registry.Service) []*registry.Service {
		// The label keys the rules and the static DestinationRules select by are kept on endpoints
		// whatever translate.labels says; set before each translation, since a rule file or a
		// governance rule may have brought new ones.
		tr.SetRoutedLabels(routed())
		return rp.Prepare(ss)
	})
	rp.Follow(tp)
	sp.Follow(tp)
	return []bridge.Producer{rp.Governance(), tp, rp, sp, bridge.Static(static)}
}

// loadRules reads the configuration's inline rules and rule files: all or nothing.
func loadRules(c rules.Config) ([]rules.Rule, error) {
	rs := c.InlineRules()
	fromFiles, err := rules.LoadFiles(c.Files)
	if err != nil {
		return nil, err
	}
	return append(rs, fromFiles...), nil
}

// rulesState is the rules' reload status, for /debug/rules and metrics.
type rulesState struct {
	mu      sync.Mutex
	lastErr string
	at      time.Time
	reloads *prometheus.CounterVec
	valid   prometheus.Gauge
}

func newRulesState(reg prometheus.Registerer, rp *rules.Producer) *rulesState {
	s := &rulesState{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_rules_reloads_total",
			Help: "Rule reloads (rule files or the configuration's rules changed), by result: ok or rejected (the last good rules keep running)."}, []string{"result"}),
		valid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcp_bridge_rules_valid",
			Help: "1 when the rules last read were all valid, 0 when a broken rule file was rejected (see /debug/rules)."}),
	}
	s.valid.Set(1)
	count := func(name, help string, f func(r, sv, c, i int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(rp.Counts())) })
	}
	reg.MustRegister(s.reloads, s.valid,
		count("mcp_bridge_rules_loaded", "Rules loaded (inline and from rule files).", func(r, _, _, _ int) int { return r }),
		count("mcp_bridge_rules_services", "Services selected by at least one rule.", func(_, sv, _, _ int) int { return sv }),
		count("mcp_bridge_rules_conflicts", "Rule conflicts: two rules setting the same section of one service (the loser is listed on /debug/rules).", func(_, _, c, _ int) int { return c }),
		count("mcp_bridge_rules_invalid", "Generated policy resources not emitted because they failed validation.", func(_, _, _, i int) int { return i }),
		govCollector{rp})
	return s
}

func (s *rulesState) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = time.Now()
	if err != nil {
		s.lastErr = err.Error()
		s.reloads.WithLabelValues("rejected").Inc()
		s.valid.Set(0)
		return
	}
	s.lastErr = ""
	s.reloads.WithLabelValues("ok").Inc()
	s.valid.Set(1)
}

// ReloadRules reads the running configuration's rules again and applies them with an immediate
// push. A broken rule file is rejected (returned, logged, shown on /debug/rules and in
// mcp_bridge_rules_valid) and the last good rules keep running.
func (p *Pipeline) ReloadRules() error {
	// Not in the middle of a configuration reload: it could read the old configuration's rule
	// files after the reload set the new ones, or push the old producer list after the new one.
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	cfg := p.Config()
	rs, err := loadRules(cfg.Rules)
	if err == nil {
		err = p.rules.SetRules(rs)
	}
	p.rulesState.record(err)
	if err != nil {
		p.log.Error("rules rejected; the last good rules keep running", "error", err)
		return err
	}
	p.log.Info("rules loaded", "rules", len(rs))
	p.mu.Lock()
	prods := p.prods
	p.mu.Unlock()
	p.bridge.Reconfigure(prods)
	return nil
}

// RulesStatus is /debug/rules: the loaded rules, conflicts, the last reload error, and for every
// selected service (or those matching query, a host or source) what the rules made and why.
func (p *Pipeline) RulesStatus(query string) any {
	p.rulesState.mu.Lock()
	lastErr := p.rulesState.lastErr
	p.rulesState.mu.Unlock()
	return struct {
		LastError string `json:"lastError,omitempty"`
		rules.Status
		// Draining lists the endpoints a staged push serves past their removal (docs/rules.md).
		Draining []bridge.Held `json:"draining"`
	}{lastErr, p.rules.Status(query), draining(p.bridge.Held(), query)}
}

// ScopesStatus is /debug/scopes: each consumer application seen, what it consumes, its Sidecars.
func (p *Pipeline) ScopesStatus() any { return p.scopes.Status() }

// GovernanceStatus is /debug/governance: the registries' governance rules, what each became
// (applied, would-apply, untranslatable with the reason per clause, disabled) and where.
func (p *Pipeline) GovernanceStatus(query string) any { return p.Governance(query) }

// Governance is GovernanceStatus typed, for the status page.
func (p *Pipeline) Governance(query string) rules.GovStatus { return p.rules.GovernanceStatus(query) }

// govCollector exports the governance rules' states.
type govCollector struct{ rp *rules.Producer }

var (
	govRulesDesc = prometheus.NewDesc("mcp_bridge_governance_rules",
		"Registry governance rules by state: applied, would-apply (governance.mode report), untranslatable (see /debug/governance), disabled, nothing-to-do.", []string{"state"}, nil)
	govProblemsDesc = prometheus.NewDesc("mcp_bridge_governance_untranslatable_clauses",
		"Clauses of registry governance rules that Istio cannot express (their rules are not applied; see /debug/governance).", nil, nil)
)

func (govCollector) Describe(ch chan<- *prometheus.Desc) { ch <- govRulesDesc; ch <- govProblemsDesc }

func (c govCollector) Collect(ch chan<- prometheus.Metric) {
	byState, problems := c.rp.GovernanceCounts()
	for state, n := range byState {
		ch <- prometheus.MustNewConstMetric(govRulesDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(govProblemsDesc, prometheus.GaugeValue, float64(problems))
}

// Rules is the rules engine's producer (explain, render).
func (p *Pipeline) Rules() *rules.Producer { return p.rules }

// watchRules reloads the rules when a rule file changes: it watches the files' directories (the
// ConfigMap "..data" swap included, as registry/file does) and polls every interval for what
// notifications miss. A reload of the configuration that changes the file list is followed at
// the next event or poll.
func (p *Pipeline) watchRules(ctx context.Context, interval time.Duration) {
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		p.log.Warn("cannot watch rule files; relying on polling", "error", err)
	} else {
		defer fs.Close()
	}
	watched := map[string]bool{}
	files := func() []string { return p.Config().Rules.Files }
	watchDirs := func() {
		if fs == nil {
			return
		}
		for _, f := range files() {
			dir := f
			if st, err := os.Stat(f); err != nil || !st.IsDir() {
				dir = filepath.Dir(f)
			}
			if !watched[dir] && fs.Add(dir) == nil {
				watched[dir] = true
			}
		}
	}
	watchDirs()
	// What New read, not what is there now: a file written between New and here is a change.
	last := p.rulesLoaded
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fs != nil {
		events, errs = fs.Events, fs.Errors
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var settle <-chan time.Time
	check := func() {
		watchDirs()
		sum := rulesSum(files())
		if sum == last {
			return
		}
		last = sum
		_ = p.ReloadRules()
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			settle = time.After(100 * time.Millisecond)
		case <-errs:
		case <-settle:
			check()
		case <-tick.C:
			check()
		}
	}
}

// rulesSum hashes the content of every rule file (directories expanded), so a reload happens
// only when one changed.
func rulesSum(paths []string) [32]byte {
	h := sha256.New()
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			h.Write([]byte("missing " + p + "\x00"))
			continue
		}
		names := []string{p}
		if st.IsDir() {
			ents, _ := os.ReadDir(p)
			names = names[:0]
			for _, e := range ents {
				names = append(names, filepath.Join(p, e.Name()))
			}
			slices.Sort(names)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				b = []byte("unreadable")
			}
			h.Write([]byte(n + "\x00"))
			h.Write(b)
			h.Write([]byte{0})
		}
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// draining is the held endpoints, those of the service query names (its source, or the host its
// ServiceEntry is named after) when one is given.
func draining(held []bridge.Held, query string) []bridge.Held {
	out := []bridge.Held{}
	for _, h := range held {
		if query == "" || h.Source == query || h.Name == strings.ToLower(query) {
			out = append(out, h)
		}
	}
	return out
}
