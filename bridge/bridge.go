// Package bridge is the loop between the merge layer and the MCP server: for every merged snapshot
// it translates the services, hands the resources to the MCP server, and records what happened
// (push duration, registry-event-to-push lag, invalid resources by reason) for metrics and the
// debug pages. It holds no registry or protocol knowledge of its own.
package bridge

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Options wires a Bridge.
type Options struct {
	Merger     *merge.Merger
	Translator *translate.Translator
	Server     *mcp.Server
	// Static are resources served as they are beside the generated ones (from staticResources files).
	Static  []*translate.Resource
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// Bridge runs the pipeline. Its accessors are safe for concurrent use by the admin handlers.
type Bridge struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	// static groups Options.Static by collection.
	static map[string][]*translate.Resource
	// served is what the last push served per collection, in both forms. Translate returns the
	// same *Resource for an unchanged service (and the same slice order), so a push compares
	// pointers, converts only what changed, and hands the MCP server only the collections that
	// changed: with 100,000 WorkloadEntries one changed instance costs a pointer walk, not a
	// rebuilt map and 100,000 re-inserted entries.
	served map[string]servedCollection

	mu       sync.RWMutex
	last     *translate.Output
	pushedAt time.Time
	pushes   uint64
}

// New returns a Bridge; Run starts it.
func New(opts Options) *Bridge {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	return &Bridge{
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Metrics),
		static:  groupByCollection(opts.Static),
		served:  make(map[string]servedCollection),
	}
}

type servedCollection struct {
	in  []*translate.Resource
	out []*mcp.Resource
}

func groupByCollection(rs []*translate.Resource) map[string][]*translate.Resource {
	m := make(map[string][]*translate.Resource)
	for _, r := range rs {
		m[r.Collection] = append(m[r.Collection], r)
	}
	return m
}

// Run drives the merge loop until ctx is done, pushing every snapshot.
func (b *Bridge) Run(ctx context.Context) {
	b.opts.Merger.Run(ctx, b.Push)
}

// Push translates one snapshot and serves the result. Run calls it for every snapshot; render
// and tests call it directly.
func (b *Bridge) Push(snap *merge.Snapshot) {
	start := time.Now()
	out := b.opts.Translator.Translate(snap.Services)
	translated := time.Since(start)

	state, changed := b.convert(out)
	b.opts.Server.Set(changed)
	elapsed := time.Since(start)

	b.metrics.observePush(snap, out, state, translated, elapsed)
	b.mu.Lock()
	b.last = out
	b.pushedAt = time.Now()
	b.pushes++
	b.mu.Unlock()

	attrs := []any{"services", len(snap.Services), "changed", snap.Changed, "invalid", len(out.Invalid), "duration", elapsed.Round(time.Microsecond)}
	for coll, rs := range state {
		attrs = append(attrs, collectionKind(coll), len(rs))
	}
	b.log.Info("pushed", attrs...)
	for _, inv := range out.Invalid {
		b.log.Warn("resource not emitted: Istiod would reject it", "collection", inv.Collection, "resource", inv.Namespace+"/"+inv.Name, "source", inv.Source, "reason", inv.Reason, "detail", inv.Detail)
	}
}

// Pushed reports whether at least one snapshot has been pushed.
func (b *Bridge) Pushed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.pushes > 0
}

// Output returns the last translation (nil before the first push). Callers must not modify it.
func (b *Bridge) Output() *translate.Output {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.last
}

// Static returns the static resources served beside the generated ones.
func (b *Bridge) Static() []*translate.Resource { return b.opts.Static }

// convert returns the MCP form of every collection (for metrics and logs) and the subset that
// differs from the last push (for the MCP server). A collection served before and now empty is
// in both, as nil, so Istiod deletes its resources.
func (b *Bridge) convert(out *translate.Output) (state, changed map[string][]*mcp.Resource) {
	state = make(map[string][]*mcp.Resource, len(out.Resources)+len(b.static))
	changed = make(map[string][]*mcp.Resource)
	inputs := make(map[string][]*translate.Resource, len(out.Resources)+len(b.static))
	for coll, rs := range out.Resources {
		inputs[coll] = rs
	}
	for coll, rs := range b.static {
		// A new slice: appending to translate's would write into its backing array.
		inputs[coll] = slices.Concat(inputs[coll], rs)
	}
	for coll, in := range inputs {
		prev, ok := b.served[coll]
		if ok && slices.Equal(in, prev.in) {
			state[coll] = prev.out
			continue
		}
		next := convertCollection(in, prev)
		b.served[coll] = servedCollection{in: in, out: next}
		state[coll], changed[coll] = next, next
	}
	for coll := range b.served {
		if _, ok := inputs[coll]; !ok {
			delete(b.served, coll)
			state[coll], changed[coll] = nil, nil
		}
	}
	return state, changed
}

// convertCollection converts in, reusing prev's MCP resources for unchanged inputs: by position
// first (the usual case: an instance changed in place), else by pointer through a map built only
// when positions shifted.
func convertCollection(in []*translate.Resource, prev servedCollection) []*mcp.Resource {
	out := make([]*mcp.Resource, len(in))
	var byPtr map[*translate.Resource]*mcp.Resource
	for i, r := range in {
		if i < len(prev.in) && prev.in[i] == r {
			out[i] = prev.out[i]
			continue
		}
		if byPtr == nil {
			byPtr = make(map[*translate.Resource]*mcp.Resource, len(prev.in))
			for j, p := range prev.in {
				byPtr[p] = prev.out[j]
			}
		}
		if m, ok := byPtr[r]; ok {
			out[i] = m
		} else {
			out[i] = toMCP(r)
		}
	}
	return out
}

func toMCP(r *translate.Resource) *mcp.Resource {
	return &mcp.Resource{
		Namespace:   r.Namespace,
		Name:        r.Name,
		Version:     r.Version,
		Labels:      r.Labels,
		Annotations: r.Annotations,
		Body:        r.Body,
	}
}

// collectionKind returns the Kind part of "group/Kind".
func collectionKind(coll string) string {
	for i := len(coll) - 1; i >= 0; i-- {
		if coll[i] == '/' {
			return coll[i+1:]
		}
	}
	return coll
}
