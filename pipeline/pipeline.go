// Package pipeline assembles and runs the bridge from a configuration: registry adapters -> merge
// -> bridge (translate, static resources) -> mcp.Server, with readiness, the state file, a
// render-once mode and hot reload of the configuration. It owns the lifecycle (which adapter runs,
// what an adapter's error means to the merge layer, when the bridge is ready) and nothing else:
// listeners, TLS, the admin HTTP server, flags and signals belong to the command, which hands the
// pipeline's mcp.Server to its gRPC server and the pipeline's status functions to the admin pages.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/rules"
	"github.com/mcp-bridge/mcp-bridge/state"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Options are what a Pipeline needs besides its configuration.
type Options struct {
	// Logger defaults to discarding.
	Logger *slog.Logger
	// NewAdapter builds a registry's adapter; nil means NewAdapter, by the registry's type. Tests
	// pass one to run an adapter built with test hooks inside the real pipeline.
	NewAdapter func(config.Registry, registry.Options) (registry.Adapter, error)
	// MCP configures the MCP server (Name, Logger, Metrics and Limits are set by the pipeline).
	MCP mcp.Options
	// RulesPollInterval is how often rule files are checked for changes besides file-system
	// notifications; default 10s.
	RulesPollInterval time.Duration
}

// Pipeline is everything between the registries and the MCP listener, built from a Config.
// Its accessors are safe for concurrent use (the admin pages call them).
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	metrics *prometheus.Registry
	merger  *merge.Merger
	server  *mcp.Server
	// servers are the MCP servers, one per shard (mcp.shards); servers[0] is server.
	servers []*mcp.Server
	bridge  *bridge.Bridge
	// history keeps the last versions of every served resource (admin.history bounds it).
	history *history.Store
	// store keeps each registry's last-known services across restarts; nil when state.file is unset.
	store *state.Store
	// tr is the translator in use; merge's identity (Key) reads it, so a reload that swaps it
	// changes both together.
	tr atomic.Pointer[translate.Translator]

	mu  sync.Mutex
	cfg *config.Config
	// adapters by registry name: built by New and by reloads, running once Run has started.
	adapters map[string]*adapterRun
	runCtx   context.Context // set by Run: what adapters started later run under
	wg       sync.WaitGroup  // running adapters

	reload *reloadState
	// applyMu serializes what a configuration reload and a rule-file reload apply (the rules, the
	// producer list, the configuration they are read from); taken before mu and the bridge's lock.
	applyMu sync.Mutex

	// rules is the rules engine's producer, kept across reloads (its subsets stay sticky);
	// prods is the producer list in use, pushed again when the rules change.
	rules      *rules.Producer
	scopes     *rules.ScopeProducer
	rulesState *rulesState
	prods      []bridge.Producer
	// rulesLoaded is the rule files' content hash when New read them (the watcher's start).
	rulesLoaded [32]byte
}

// New builds the pipeline without starting anything: every constructor's own checks run
// (templates, CIDRs, credential sources), nothing connects. Run starts it.
func New(cfg *config.Config, opts Options) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RulesPollInterval <= 0 {
		opts.RulesPollInterval = 10 * time.Second
	}
	if opts.NewAdapter == nil {
		opts.NewAdapter = NewAdapter
	}
	log := opts.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	translator, err := translate.New(cfg.Translate)
	if err != nil {
		return nil, fmt.Errorf("translate: %w", err)
	}
	p := &Pipeline{opts: opts, log: log, metrics: reg, cfg: cfg, adapters: map[string]*adapterRun{}}
	p.tr.Store(translator)
	p.merger, err = merge.New(merge.Options{
		Registries: cfg.RegistryNames(),
		Debounce:   cfg.Debounce,
		Protection: cfg.Protection,
		Duplicates: cfg.Duplicates,
		Key:        p.host,
		Logger:     log.With("component", "merge"),
		Metrics:    reg,
	})
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	static, err := bridge.LoadStatic(cfg.StaticResources)
	if err != nil {
		return nil, err
	}
	p.rulesLoaded = rulesSum(cfg.Rules.Files)
	ruleList, err := loadRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	p.rules = rules.NewProducer(rules.New(rules.Options{Host: p.host, IncludeUnhealthy: cfg.Translate.IncludeUnhealthy,
		IncludeDisabled: cfg.Translate.IncludeDisabled, IncludeZeroWeight: cfg.Translate.IncludeZeroWeight}))
	if err := p.rules.SetRules(ruleList); err != nil {
		return nil, err
	}
	p.rules.SetGovernanceMode(cfg.Governance.Effective())
	p.rulesState = newRulesState(reg, p.rules)
	reg.MustRegister(labelsCollector{p})
	p.scopes = rules.NewScopeProducer(cfg.SidecarScopes)
	p.prods = producers(translator, p.rules, p.scopes, static)
	p.servers = newServers(opts.MCP, cfg.MCP, log, reg)
	p.server = p.servers[0]
	p.registerShardMetrics(reg)
	p.history = history.New(cfg.Admin.History)
	p.bridge = bridge.New(bridge.Options{
		History:   p.history,
		Merger:    p.merger,
		Producers: p.prods,
		Server:    p.server,
		Shards:    p.servers,
		Logger:    log.With("component", "bridge"),
		Metrics:   reg,
		// The staged push (docs/rules.md): a rules setting, because only routing changes need it.
		DrainGrace: cfg.Rules.BridgeDrainGrace(),
	})
	if cfg.State.Enabled() {
		if p.store, err = state.New(cfg.State, state.Options{Logger: log.With("component", "state"), Metrics: reg}); err != nil {
			return nil, err
		}
	}
	for _, r := range cfg.Registries {
		a, err := p.newAdapterRun(r)
		if err != nil {
			return nil, err
		}
		p.adapters[r.Name] = a
	}
	p.reload = newReloadState(reg, cfg)
	return p, nil
}

// host is merge's identity of a service: its primary host under the current translator.
func (p *Pipeline) host(s *registry.Service) string { return p.tr.Load().Host(s) }

// NewAdapter builds a registry's adapter through the registry table.
func NewAdapter(r config.Registry, opts registry.Options) (registry.Adapter, error) {
	t, ok := registries.Lookup(r.Type)
	if !ok {
		return nil, fmt.Errorf("unknown registry type %q", r.Type)
	}
	return t.New(r.Config, opts)
}

// Server is the MCP server to register on the gRPC server; with mcp.shards > 1, shard 0's
// (Servers lists them all).
func (p *Pipeline) Server() *mcp.Server { return p.server }

// Servers are the MCP servers, one per shard, shard 0 first: each to be registered on its own
// gRPC server and listener (config.MCP.Addresses, in the same order).
func (p *Pipeline) Servers() []*mcp.Server { return p.servers }

// Bridge is the loop (its last output feeds the debug pages).
func (p *Pipeline) Bridge() *bridge.Bridge { return p.bridge }

// History is the resource history (/history).
func (p *Pipeline) History() *history.Store { return p.history }

// Merger is the merge layer (its status feeds /debug/registries).
func (p *Pipeline) Merger() *merge.Merger { return p.merger }

// Config returns the configuration being served. Callers must not modify it.
func (p *Pipeline) Config() *config.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Ready is true once every registry has synced or had its last-known state restored from the
// state file (or protection.initialSyncTimeout passed), and the first push has been served. A
// registry that fails before its first sync, with nothing restored, keeps the bridge unready:
// serving without it would make Istiod delete its services. A registry added by a reload never
// makes a ready bridge unready.
func (p *Pipeline) Ready() (bool, string) {
	if !p.merger.Ready() {
		var waiting []string
		for _, s := range p.merger.Status() {
			if !s.AwaitingInitialSync {
				continue
			}
			w := s.Name
			if s.LastError != "" {
				w += " (failing: " + s.LastError + ")"
			}
			waiting = append(waiting, w)
		}
		return false, "waiting for the first sync of registries with no restored state: " + strings.Join(waiting, ", ")
	}
	if !p.bridge.Pushed() {
		return false, "first push not done yet"
	}
	for i, s := range p.servers {
		if !s.Answering() {
			return false, fmt.Sprintf("MCP shard %d has no state yet", i)
		}
	}
	return true, ""
}

// Registries is /debug/registries: the merge layer's view, each adapter's own, the state file.
func (p *Pipeline) Registries() any {
	return map[string]any{"registries": p.merger.Status(), "adapters": p.describe(), "state": p.stateStatus()}
}

// Invalid lists what the last push did not emit, with reasons.
func (p *Pipeline) Invalid() any {
	out := p.bridge.Output()
	if out == nil {
		return map[string]any{"invalid": []any{}, "warnings": []any{}}
	}
	return map[string]any{"invalid": out.Invalid, "warnings": out.Warnings}
}

// describe returns each adapter's own status, keyed by registry name.
func (p *Pipeline) describe() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]any, len(p.adapters))
	for name, a := range p.adapters {
		if d, ok := a.adapter.(registry.Describer); ok {
			out[name] = d.Describe()
		}
	}
	return out
}
