package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/state"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// pipeline is everything between the registries and the MCP listener, built from a Config.
type pipeline struct {
	cfg        *config.Config
	log        *slog.Logger
	metrics    *prometheus.Registry
	adapters   []namedAdapter
	merger     *merge.Merger
	translator *translate.Translator
	server     *mcp.Server
	bridge     *bridge.Bridge
	// store keeps each registry's last-known services across restarts; nil when state.file is unset.
	store *state.Store
}

type namedAdapter struct {
	name    string
	adapter registry.Adapter
}

func buildPipeline(cfg *config.Config, log *slog.Logger) (*pipeline, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	translator, err := translate.New(cfg.Translate)
	if err != nil {
		return nil, fmt.Errorf("translate: %w", err)
	}
	merger, err := merge.New(merge.Options{
		Registries: cfg.RegistryNames(),
		Debounce:   cfg.Debounce,
		Protection: cfg.Protection,
		Duplicates: cfg.Duplicates,
		Key:        translator.Host,
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
	server := mcp.NewServer(mcp.Options{Name: "mcp", Logger: log.With("component", "mcp"), Metrics: reg})
	p := &pipeline{
		cfg:        cfg,
		log:        log,
		metrics:    reg,
		merger:     merger,
		translator: translator,
		server:     server,
		bridge: bridge.New(bridge.Options{
			Merger:     merger,
			Translator: translator,
			Server:     server,
			Static:     static,
			Logger:     log.With("component", "bridge"),
			Metrics:    reg,
		}),
	}
	if cfg.State.Enabled() {
		if p.store, err = state.New(cfg.State, state.Options{Logger: log.With("component", "state"), Metrics: reg}); err != nil {
			return nil, err
		}
	}
	for _, r := range cfg.Registries {
		a, err := newAdapter(r, registry.Options{
			Name:    r.Name,
			Logger:  log.With("registry", r.Name),
			Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"registry": r.Name}, reg),
		})
		if err != nil {
			return nil, fmt.Errorf("registry %q: %w", r.Name, err)
		}
		p.adapters = append(p.adapters, namedAdapter{r.Name, a})
	}
	return p, nil
}

// newAdapter builds a registry's adapter through the registry table.
func newAdapter(r config.Registry, opts registry.Options) (registry.Adapter, error) {
	t, ok := registries.Lookup(r.Type)
	if !ok {
		return nil, fmt.Errorf("unknown registry type %q", r.Type)
	}
	return t.New(r.Config, opts)
}

// runAdapters starts every adapter; the returned WaitGroup ends when all have returned.
func (p *pipeline) runAdapters(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, na := range p.adapters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := na.adapter.Run(ctx, p.merger.Sink(na.name)); err != nil && ctx.Err() == nil {
				p.log.Error("registry adapter stopped: its last-known services are held", "registry", na.name, "error", err)
				p.merger.Sink(na.name).Fail(err)
			}
		}()
	}
	return &wg
}

// describe returns each adapter's own status, keyed by registry name.
func (p *pipeline) describe() map[string]any {
	out := make(map[string]any, len(p.adapters))
	for _, na := range p.adapters {
		if d, ok := na.adapter.(registry.Describer); ok {
			out[na.name] = d.Describe()
		}
	}
	return out
}
