package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/rules"
)

// Run restores the state file, then runs the state saver, every adapter and the bridge loop
// until ctx ends, and returns once all of them have stopped (the state file's last write, with
// what the adapters left, included). Call it once, after the MCP listener is up: Istiod needs
// the listener at once, and gets no answer before the first push anyway.
func (p *Pipeline) Run(ctx context.Context) {
	// Restored before the adapters start, so a restored registry counts as ready at once.
	p.restoreState()
	// The state file outlives the adapters: it is written last.
	stateCtx, stopState := context.WithCancel(context.Background())
	defer stopState()
	stateDone := p.runState(stateCtx)

	p.mu.Lock()
	p.runCtx = ctx
	for _, r := range p.cfg.Registries {
		p.start(ctx, r.Name, p.adapters[r.Name])
	}
	p.mu.Unlock()
	rulesDone := make(chan struct{})
	go func() {
		p.watchRules(ctx, p.opts.RulesPollInterval)
		close(rulesDone)
	}()
	bridgeDone := make(chan struct{})
	go func() {
		p.bridge.Run(ctx)
		close(bridgeDone)
	}()

	<-ctx.Done()
	// A reload in progress finishes first, so no adapter starts after the wait below.
	p.reload.mu.Lock()
	p.wg.Wait()
	p.reload.mu.Unlock()
	<-bridgeDone
	<-rulesDone
	stopState()
	<-stateDone
}

// Rendered is what Render read and produced.
type Rendered struct {
	// Output is what the bridge would serve: every producer's resources, invalid and warnings.
	Output *bridge.Output
	// Registries is every registry's status after the read: Synced false means it was not read.
	Registries []merge.RegistryStatus
	// Rules is the rules engine after the push: Status explains what it made of each service.
	Rules *rules.Producer
}

// Resources returns every resource as the bridge serves them.
func (r *Rendered) Resources() []*istio.Resource { return r.Output.Served() }

// Render reads every registry once, waiting at most timeout for each one's first sync, and
// translates the result as the running bridge would. It runs the same pipeline as serve, with a
// short debounce and no protection wait, and stops it afterwards.
func Render(ctx context.Context, cfg *config.Config, opts Options, timeout time.Duration) (*Rendered, error) {
	c := *cfg
	// One snapshot with every registry read: no debounce wait beyond a short quiet period, and no
	// waiting on protection holds.
	c.Debounce = merge.Debounce{Quiet: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	c.Protection.InitialSyncTimeout = timeout
	p, err := New(&c, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	p.mu.Lock()
	for _, r := range c.Registries {
		p.start(ctx, r.Name, p.adapters[r.Name])
	}
	p.mu.Unlock()
	first := make(chan *merge.Snapshot, 1)
	go p.merger.Run(ctx, func(s *merge.Snapshot) {
		select {
		case first <- s:
		default:
		}
	})
	var snap *merge.Snapshot
	select {
	case snap = <-first:
	case <-ctx.Done():
	}
	cancel()
	p.wg.Wait()
	if snap == nil {
		return nil, errors.New("no registry snapshot before the timeout")
	}
	p.bridge.Push(snap)
	return &Rendered{Output: p.bridge.Output(), Registries: p.merger.Status(), Rules: p.rules}, nil
}
