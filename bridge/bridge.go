// Package bridge is the loop between the merge layer and the MCP server: for every merged snapshot
// it translates the services, hands the resources to the MCP server, and records what happened
// (push duration, registry-event-to-push lag, invalid resources by reason) for metrics and the
// debug pages. It holds no registry or protocol knowledge of its own.
package bridge

import (
	"context"
	"log/slog"
	"sort"
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

	// converted caches the MCP form of each translated resource by pointer: translate returns the
	// same *Resource for an unchanged service, so a push converts only what changed.
	converted map[*translate.Resource]*mcp.Resource

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
		opts:      opts,
		log:       opts.Logger,
		metrics:   newMetrics(opts.Metrics),
		converted: make(map[*translate.Resource]*mcp.Resource),
	}
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

	state := make(map[string][]*mcp.Resource, len(out.Resources)+2)
	next := make(map[*translate.Resource]*mcp.Resource, len(b.converted))
	add := func(r *translate.Resource) {
		m, ok := b.converted[r]
		if !ok {
			m = toMCP(r)
		}
		next[r] = m
		state[r.Collection] = append(state[r.Collection], m)
	}
	for _, coll := range sortedKeys(out.Resources) {
		for _, r := range out.Resources[coll] {
			add(r)
		}
	}
	for _, r := range b.opts.Static {
		add(r)
	}
	// Every collection we have ever served is set, so one that became empty is emptied in Istiod.
	for coll := range b.metrics.seenCollections {
		if _, ok := state[coll]; !ok {
			state[coll] = nil
		}
	}
	b.converted = next
	b.opts.Server.Set(state)
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
