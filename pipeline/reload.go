package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// reloadState is the reload history /debug/config and the metrics show. mu serializes reloads
// (and Run's shutdown against a reload); the rest is guarded by statMu.
type reloadState struct {
	mu sync.Mutex

	statMu          sync.Mutex
	lastAttempt     time.Time
	lastResult      string // "success", "unchanged" or "failure"
	lastError       string
	lastPlan        *Plan
	lastSuccess     time.Time
	pendingRestart  []string
	waitingFor      []string // added registries whose first sync a reload is waiting for
	reloads         *prometheus.CounterVec
	lastSuccessTime prometheus.Gauge
	restartPending  prometheus.Gauge
}

func newReloadState(reg prometheus.Registerer, cfg *config.Config) *reloadState {
	s := &reloadState{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_config_reloads_total",
			Help: "Configuration reloads by result: success (applied), unchanged (nothing to apply), failure (rejected; the running configuration stays, see /debug/config).",
		}, []string{"result"}),
		lastSuccessTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_config_last_reload_success_timestamp_seconds",
			Help: "When the running configuration was last loaded or reloaded successfully.",
		}),
		restartPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_config_restart_required",
			Help: "1 while the configuration file sets options that only a restart applies (listed on /debug/config).",
		}),
	}
	for _, r := range []string{"success", "unchanged", "failure"} {
		s.reloads.WithLabelValues(r)
	}
	reg.MustRegister(s.reloads, s.lastSuccessTime, s.restartPending)
	s.lastSuccess = time.Now()
	s.lastSuccessTime.Set(float64(s.lastSuccess.UnixNano()) / 1e9)
	return s
}

func (s *reloadState) record(result string, err error, plan *Plan) {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	s.lastAttempt, s.lastResult, s.lastPlan = time.Now(), result, plan
	s.lastError = ""
	if err != nil {
		s.lastError = err.Error()
	}
	s.reloads.WithLabelValues(result).Inc()
	if result != "failure" {
		s.lastSuccess = s.lastAttempt
		s.lastSuccessTime.Set(float64(s.lastSuccess.UnixNano()) / 1e9)
		s.pendingRestart = plan.NeedsRestart
		s.restartPending.Set(b2f(len(plan.NeedsRestart) > 0))
	}
}

func (s *reloadState) setWaiting(names []string) {
	s.statMu.Lock()
	s.waitingFor = names
	s.statMu.Unlock()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Rejected records a configuration that could not even be loaded (unreadable, invalid YAML, a
// failed validation): the running configuration stays, and the error shows on /debug/config and
// in mcp_bridge_config_reloads_total{result="failure"}.
func (p *Pipeline) Rejected(err error) {
	p.log.Error("new configuration rejected: the running one stays", "error", err)
	p.reload.record("failure", err, nil)
}

// Reload applies a new, already validated configuration to the running pipeline:
//
//   - everything the new configuration needs is built first (translator, static resources,
//     adapters); a failure there rejects it whole and changes nothing;
//   - registries whose source did not change keep running untouched; changed ones restart; added
//     ones start and their first sync is awaited (up to protection.initialSyncTimeout, readiness
//     unaffected) before removed ones stop and their services are withdrawn;
//   - translate options and static resources apply with an immediate push; every host keeps its
//     VIP; MCP streams are not touched;
//   - options that cannot change while running (Plan.NeedsRestart) keep their running value and
//     are reported.
//
// Reloads are serialized. It returns the plan it applied.
func (p *Pipeline) Reload(ctx context.Context, next *config.Config) (Plan, error) {
	p.reload.mu.Lock()
	defer p.reload.mu.Unlock()
	plan, err := p.apply(ctx, next)
	switch {
	case err != nil:
		p.log.Error("new configuration rejected: the running one stays", "error", err)
		p.reload.record("failure", err, &plan)
	case plan.Empty():
		p.reload.record("unchanged", nil, &plan)
		p.log.Info("configuration reloaded: nothing to change", "needsRestart", plan.NeedsRestart)
	default:
		p.reload.record("success", nil, &plan)
		p.log.Info("configuration reloaded", "unchanged", plan.Unchanged, "restarted", plan.Changed,
			"added", plan.Added, "removed", plan.Removed, "translate", plan.Translate, "needsRestart", plan.NeedsRestart)
	}
	if len(plan.NeedsRestart) > 0 && err == nil {
		p.log.Warn("configuration options changed that only a restart applies; they keep their running values", "options", plan.NeedsRestart)
	}
	return plan, err
}

func (p *Pipeline) apply(ctx context.Context, next *config.Config) (Plan, error) {
	old := p.Config()
	plan := Diff(old, next)
	running := runningConfig(old, next)

	// Build what the plan needs; nothing runs yet.
	var tr *translate.Translator
	if plan.Translate {
		opts := running.Translate
		// Registries being removed stay named until their services are withdrawn.
		for _, r := range old.TranslateRegistries() {
			if slices.Contains(plan.Removed, r.Name) {
				opts.Registries = append(opts.Registries, r)
			}
		}
		var err error
		if tr, err = p.tr.Load().Successor(opts); err != nil {
			return plan, err
		}
	}
	static, err := bridge.LoadStatic(running.StaticResources)
	if err != nil {
		return plan, err
	}
	ruleList, err := loadRules(running.Rules)
	if err != nil {
		return plan, err
	}
	fresh := make(map[string]*adapterRun)
	for _, r := range running.Registries {
		if slices.Contains(plan.Changed, r.Name) || slices.Contains(plan.Added, r.Name) {
			a, err := p.newAdapterRun(r)
			if err != nil {
				return plan, err
			}
			fresh[r.Name] = a
		}
	}

	// Apply. The translator before the adapters: merge's identity and the added registries'
	// naming need it.
	// applyMu keeps a rule-file reload from setting the old configuration's rules or pushing the
	// old producer list in the middle of this.
	p.applyMu.Lock()
	// The rules first: the engine is the last check that can reject the configuration (a name
	// declared both inline and in a file), and a rejected one must change nothing.
	if err := p.rules.SetRules(ruleList); err != nil {
		p.applyMu.Unlock()
		return plan, err
	}
	if tr != nil {
		p.tr.Store(tr)
		p.merger.Rekey()
	}
	p.rules.SetGovernanceMode(running.Governance.Effective())
	p.rulesState.record(nil)
	p.scopes.SetConfig(running.SidecarScopes)
	p.bridge.SetDrainGrace(running.Rules.BridgeDrainGrace())
	// producers makes the rules and scope producers follow a new translate producer: done under
	// the push lock, else a push in between runs the old list with the rules reading a translate
	// producer that has not run (no output: every rule's resources withdrawn for that push).
	var prods []bridge.Producer
	p.bridge.ReconfigureWith(func() []bridge.Producer {
		prods = producers(p.tr.Load(), p.rules, p.scopes, static)
		return prods
	})
	p.mu.Lock()
	p.prods = prods
	p.cfg = withRemoved(running, old, plan.Removed)
	stopped := make([]*adapterRun, 0, len(plan.Changed))
	for _, name := range plan.Changed {
		stopped = append(stopped, p.adapters[name])
	}
	p.mu.Unlock()
	// From here the configuration names the new rules: a rule-file reload may run again (not
	// held up by the wait for added registries below).
	p.applyMu.Unlock()
	for _, a := range stopped {
		a.stop()
	}
	p.mu.Lock()
	for name, a := range fresh {
		p.merger.AddRegistry(name) // no-op for a restarted one: it keeps its served state
		p.adapters[name] = a
		if p.runCtx != nil && p.runCtx.Err() == nil {
			p.start(p.runCtx, name, a)
		}
	}
	p.mu.Unlock()

	if len(plan.Added) > 0 && len(plan.Removed) > 0 {
		p.awaitSync(ctx, plan.Added, running.Protection.InitialSyncTimeout)
	}
	for _, name := range plan.Removed {
		p.mu.Lock()
		a := p.adapters[name]
		p.mu.Unlock()
		a.stop()
		p.merger.RemoveRegistry(name)
		p.mu.Lock()
		delete(p.adapters, name)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.cfg = running
	p.mu.Unlock()
	return plan, nil
}

// awaitSync waits until the named registries have synced, at most timeout. Snapshots keep
// flowing meanwhile: this only delays the removals of the same reload.
func (p *Pipeline) awaitSync(ctx context.Context, names []string, timeout time.Duration) {
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	defer p.reload.setWaiting(nil)
	for {
		var waiting []string
		for _, s := range p.merger.Status() {
			if slices.Contains(names, s.Name) && !s.Synced {
				waiting = append(waiting, s.Name)
			}
		}
		if len(waiting) == 0 {
			return
		}
		p.reload.setWaiting(waiting)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-deadline:
			p.log.Error("added registries did not sync within protection.initialSyncTimeout; removing the registries this reload removes anyway",
				"registries", waiting, "timeout", timeout.String())
			return
		}
	}
}

// runningConfig is next with the options that cannot change while running kept at their running
// values: what the bridge serves after the reload.
func runningConfig(old, next *config.Config) *config.Config {
	c := *next
	c.MCP, c.Admin, c.Log, c.State = old.MCP, old.Admin, old.Log, old.State
	c.Debounce, c.Protection, c.Duplicates = old.Debounce, old.Protection, old.Duplicates
	c.Translate.VIPCIDR = old.Translate.VIPCIDR
	return &c
}

// withRemoved is c with the removed registries of old appended: the configuration while they are
// still being withdrawn (the state file keeps saving them meanwhile).
func withRemoved(c, old *config.Config, removed []string) *config.Config {
	if len(removed) == 0 {
		return c
	}
	out := *c
	out.Registries = slices.Clone(c.Registries)
	for _, r := range old.Registries {
		if slices.Contains(removed, r.Name) {
			out.Registries = append(out.Registries, r)
		}
	}
	return &out
}

// LoadAndReload reads the configuration file with load and applies it; a file that does not load
// is rejected like an invalid one.
func (p *Pipeline) LoadAndReload(ctx context.Context, load func() (*config.Config, error)) error {
	cfg, err := load()
	if err != nil {
		err = fmt.Errorf("loading the new configuration: %w", err)
		p.Rejected(err)
		return err
	}
	_, err = p.Reload(ctx, cfg)
	return err
}
