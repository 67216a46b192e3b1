package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// adapterRun is one registry's adapter and, once started, its run.
type adapterRun struct {
	cfg     config.Registry
	adapter registry.Adapter
	// metrics is the adapter's own registry: an adapter restarted by a reload registers the same
	// collectors again, which one shared registry would refuse, and a removed one's series must go.
	metrics *prometheus.Registry

	cancel context.CancelFunc // nil until started
	done   chan struct{}
	gate   *gateSink
}

func (p *Pipeline) newAdapterRun(r config.Registry) (*adapterRun, error) {
	reg := prometheus.NewRegistry()
	a, err := p.opts.NewAdapter(r, registry.Options{
		Name:    r.Name,
		Logger:  p.log.With("registry", r.Name),
		Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"registry": r.Name}, reg),
	})
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", r.Name, err)
	}
	return &adapterRun{cfg: r, adapter: a, metrics: reg}, nil
}

// start runs the adapter under ctx. An adapter that stops with an error before it is stopped
// makes its registry Fail: the merge layer holds its last-known services. Under p.mu.
func (p *Pipeline) start(ctx context.Context, name string, a *adapterRun) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.done = make(chan struct{})
	a.gate = &gateSink{next: p.merger.Sink(name)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(a.done)
		if err := a.adapter.Run(ctx, a.gate); err != nil && ctx.Err() == nil {
			p.log.Error("registry adapter stopped: its last-known services are held", "registry", name, "error", err)
			a.gate.Fail(err)
		}
	}()
}

// stop cancels the adapter and waits for it; afterwards nothing it still sends reaches the merge
// layer (a restarted registry's new adapter and a removed registry's successor must not be
// disturbed by a straggler). Safe on an adapter that never started.
func (a *adapterRun) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.gate.close()
}

// gateSink forwards to the merge layer until closed.
type gateSink struct {
	next   registry.Sink
	mu     sync.RWMutex
	closed bool
}

func (g *gateSink) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *gateSink) do(f func(registry.Sink)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.closed {
		f(g.next)
	}
}

func (g *gateSink) Replace(s []*registry.Service) { g.do(func(n registry.Sink) { n.Replace(s) }) }
func (g *gateSink) Upsert(s []*registry.Service)  { g.do(func(n registry.Sink) { n.Upsert(s) }) }
func (g *gateSink) Delete(k []registry.Key)       { g.do(func(n registry.Sink) { n.Delete(k) }) }
func (g *gateSink) Fail(err error)                { g.do(func(n registry.Sink) { n.Fail(err) }) }
func (g *gateSink) Reject(where, reason string, err error) {
	g.do(func(n registry.Sink) { n.Reject(where, reason, err) })
}
func (g *gateSink) Accept(where string) { g.do(func(n registry.Sink) { n.Accept(where) }) }
func (g *gateSink) ReplaceRules(r []*registry.Rule) {
	g.do(func(n registry.Sink) { n.ReplaceRules(r) })
}
func (g *gateSink) UpsertRules(r []*registry.Rule) { g.do(func(n registry.Sink) { n.UpsertRules(r) }) }
func (g *gateSink) DeleteRules(k []registry.RuleKey) {
	g.do(func(n registry.Sink) { n.DeleteRules(k) })
}

// gather collects the pipeline's metrics and those of every current adapter.
func (p *Pipeline) gather() ([]*dto.MetricFamily, error) {
	p.mu.Lock()
	gs := prometheus.Gatherers{p.metrics}
	for _, a := range p.adapters {
		gs = append(gs, a.metrics)
	}
	p.mu.Unlock()
	return gs.Gather()
}

// Gatherer returns every metric of the pipeline: its own, and each current adapter's.
func (p *Pipeline) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(p.gather)
}
