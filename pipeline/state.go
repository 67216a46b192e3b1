package pipeline

import (
	"context"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/state"
)

// restoreState seeds the merger with the registries' last-known services from the state file,
// if one is configured. Call it before the adapters start: a registry restored here counts as
// ready at once, so the first push serves its services even if it cannot be read now.
func (p *Pipeline) restoreState() {
	if p.store == nil {
		return
	}
	cfg := p.Config()
	refs := make([]state.Ref, len(cfg.Registries))
	for i, r := range cfg.Registries {
		refs[i] = state.Ref{Name: r.Name, Type: r.Type}
	}
	p.store.RestoreAll(refs, func(r state.Registry) {
		if r.Rules != nil { // nil: the file does not know them (an older file)
			p.merger.RestoreRules(r.Name, r.Rules)
		}
		p.merger.Restore(r.Name, r.Services)
	})
}

// runState keeps the state file up to date until ctx ends, then writes what is pending. It
// returns a channel closed when the last write is done; nil-safe without a state file.
func (p *Pipeline) runState(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if p.store == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		p.store.Run(ctx, stateSource{m: p.merger, config: p.Config})
	}()
	return done
}

// stateStatus is the state file's part of /debug/registries.
func (p *Pipeline) stateStatus() any {
	if p.store == nil {
		return map[string]any{"file": "", "note": "state.file is not set: a restart while a registry is unreachable waits for it (protection.initialSyncTimeout), then serves without it"}
	}
	return p.store.Status()
}

// stateSource is the merge layer as the state file sees it: the served services of each
// configured registry, labelled with its configured type so that a registry whose type changes
// is not restored from the other type's state. The configuration is read at each save: a reload
// adds and removes registries.
type stateSource struct {
	m      *merge.Merger
	config func() *config.Config
}

func (s stateSource) Changes() <-chan struct{}                { return s.m.Changes() }
func (s stateSource) Revision() (revision uint64, synced int) { return s.m.Revision() }

func (s stateSource) Collect() []state.Registry {
	known := s.m.LastKnown()
	types := make(map[string]string)
	for _, r := range s.config().Registries {
		types[r.Name] = r.Type
	}
	out := make([]state.Registry, 0, len(known))
	for _, lk := range known {
		if typ, ok := types[lk.Registry]; ok {
			out = append(out, state.Registry{Name: lk.Registry, Type: typ, Services: lk.Services, Rules: lk.Rules})
		}
	}
	return out
}
