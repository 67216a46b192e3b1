// Package bridge is the loop between the merge layer and the MCP server: for every merged snapshot
// it runs its producers in order (translate, static files, later the rules engine), resolves
// names two producers both emit (the earlier wins, the conflict is reported), hands the resources
// to the MCP server, and records what happened (push duration, registry-event-to-push lag,
// invalid resources by reason) for metrics and the debug pages. It holds no registry or protocol
// knowledge of its own.
package bridge

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Options wires a Bridge.
type Options struct {
	Merger *merge.Merger
	Server *mcp.Server
	// Shards, when set, are the MCP servers of mcp.shards, shard 0 first (Server is then unused):
	// each push splits every collection over them by ShardOf and hands each server its share.
	Shards []*mcp.Server
	// Producers make the resources, in order of precedence: when two emit the same
	// collection/namespace/name, the earlier one's is served. Empty means Translate(Translator)
	// then Static(Static).
	Producers []Producer
	// Translator and Static are the default producers' inputs, used only when Producers is empty.
	Translator *translate.Translator
	// Static are resources served as they are beside the generated ones (from staticResources files).
	Static  []*istio.Resource
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// History, when set, records every resource version pushed, with the push's cause.
	History *history.Store
	// DrainGrace is how long a staged push keeps serving the endpoints it removes from a service
	// whose routing changed in the same push (drain.go). Zero means DefaultDrainGrace; negative
	// turns staging off (routing and endpoint changes are served together).
	DrainGrace time.Duration
}

// Bridge runs the pipeline. Its accessors are safe for concurrent use by the admin handlers.
type Bridge struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// shards hands each push to the MCP server(s); guarded by pushMu.
	shards *shards

	// pushMu serializes pushes: the merge loop's, Reconfigure's and the drain timer's. It guards
	// producers, names, merged, logged, served, lastSnap, target and drain.
	pushMu    sync.Mutex
	producers []Producer
	names     []string
	lastSnap  *merge.Snapshot
	// merged is each collection as combined from the producers at the last push; a collection
	// whose inputs are the same slices as then is not combined again.
	merged map[string]*mergedCollection
	// logged are the conflicts already logged, so each is logged once, when it appears.
	logged map[Conflict]bool
	// served is what the last push served per collection, in both forms. Producers return the
	// same *Resource for an unchanged resource (and the same slice order), so a push compares
	// pointers, converts only what changed, and hands the MCP server only the collections that
	// changed: with 100,000 WorkloadEntries one changed instance costs a pointer walk, not a
	// rebuilt map and 100,000 re-inserted entries.
	served map[string]servedCollection
	// warned is the last push's warnings, so each is logged when it appears, not on every push.
	warned map[istio.Warning]bool
	// target is the last push's combined output before the staged push's holds: what a drain
	// grace's end serves again. drain is the held endpoints.
	target *Output
	drain  drainState
	// now is the drain's clock (time.Now; tests set another).
	now func() time.Time

	mu       sync.RWMutex
	last     *Output
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
	producers := opts.Producers
	if len(producers) == 0 {
		producers = []Producer{Translate(opts.Translator), Static(opts.Static)}
	}
	b := &Bridge{
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Metrics),
		merged:  make(map[string]*mergedCollection),
		logged:  make(map[Conflict]bool),
		served:  make(map[string]servedCollection),
	}
	servers := opts.Shards
	if len(servers) == 0 {
		servers = []*mcp.Server{opts.Server}
	}
	b.shards = newShards(servers)
	b.setProducers(producers)
	b.drain.grace = drainGrace(opts.DrainGrace)
	b.now = time.Now
	return b
}

func drainGrace(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultDrainGrace
	}
	return max(d, 0)
}

// SetDrainGrace changes the drain grace (a configuration reload); it applies from the next push.
// Endpoints already held keep their deadline, or go at the next push when staging is turned off.
func (b *Bridge) SetDrainGrace(d time.Duration) {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	b.drain.grace = drainGrace(d)
}

// setProducers replaces the producer list; callers hold pushMu (or own b exclusively).
func (b *Bridge) setProducers(producers []Producer) {
	b.producers = producers
	b.names = make([]string, len(producers))
	for i, p := range producers {
		b.names[i] = p.Name()
	}
}

// Output is what the last push served.
type Output struct {
	// Production holds every collection served (conflicts resolved), every producer's Invalid
	// followed by one per conflict (reason producer-conflict), and every producer's Warnings.
	Production
	// Conflicts lists the names two producers emitted, sorted.
	Conflicts []Conflict
}

// Served returns every resource served, collections in order; nil for a nil Output.
func (o *Output) Served() []*istio.Resource {
	if o == nil {
		return nil
	}
	var all []*istio.Resource
	for _, coll := range slices.Sorted(maps.Keys(o.Resources)) {
		all = append(all, o.Resources[coll]...)
	}
	return all
}

type servedCollection struct {
	in  []*istio.Resource
	out []*mcp.Resource
}

func groupByCollection(rs []*istio.Resource) map[string][]*istio.Resource {
	m := make(map[string][]*istio.Resource)
	for _, r := range rs {
		m[r.Collection] = append(m[r.Collection], r)
	}
	return m
}

// Run drives the merge loop until ctx is done, pushing every snapshot.
func (b *Bridge) Run(ctx context.Context) {
	b.opts.Merger.Run(ctx, b.Push)
	b.pushMu.Lock()
	// A push after this (a reload or rule-file reload finishing during shutdown) arms no drain
	// timer, and a timer that fired but waits for pushMu does nothing: no goroutine serves after
	// Run has returned.
	b.drain.stopped = true
	if b.drain.timer != nil {
		b.drain.timer.Stop()
		b.drain.timer = nil
	}
	b.pushMu.Unlock()
}

// Push runs the producers on one snapshot and serves the result. Run calls it for every snapshot;
// render and tests call it directly.
func (b *Bridge) Push(snap *merge.Snapshot) {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	b.push(snap, triggerRegistry)
}

// push is Push under pushMu; trigger says why, for the history.
func (b *Bridge) push(snap *merge.Snapshot, trigger string) {
	b.lastSnap = snap
	start := time.Now()
	prods := make([]*Production, len(b.producers))
	stages := make(map[string]time.Duration, len(b.producers))
	for i, p := range b.producers {
		t := time.Now()
		prods[i] = p.Produce(snap)
		stages[b.names[i]] += time.Since(t)
	}
	b.serve(snap, b.combine(prods), trigger, start, stages)
}

// serve hands the MCP server the combined output, with the endpoints a staged push holds
// (drain.go), and records the push. start is when the push began; stages its producers' times.
func (b *Bridge) serve(snap *merge.Snapshot, out *Output, trigger string, start time.Time, stages map[string]time.Duration) {
	var prevIn map[string][]*istio.Resource
	if b.opts.History != nil {
		prevIn = make(map[string][]*istio.Resource, len(b.served))
		for coll, s := range b.served {
			prevIn[coll] = s.in
		}
	}
	if trigger != triggerDrain {
		b.target = out
	}
	now := b.now()
	served, staged := b.applyDrain(out.Resources, now)
	o := *out
	o.Resources = served
	out = &o
	state, changed := b.convert(out.Resources)
	if b.opts.History != nil && len(changed) > 0 {
		b.recordHistory(snap, trigger, prevIn, out.Resources, slices.Sorted(maps.Keys(changed)))
	}
	var changedAt time.Time // the registry event behind this push: mcp times change -> send from it
	if snap != nil {
		changedAt = snap.OldestEvent
	}
	b.shards.set(out.Resources, changed, changedAt)
	b.drain.schedule(now, b.drainExpired)
	elapsed := time.Since(start)

	held := b.drain.count()
	b.metrics.observeDrain(staged, held)
	if staged {
		b.log.Info("staged push: routing changed and endpoints removed; the endpoints stay served for the drain grace", "grace", b.drain.grace, "held", held)
	}
	if trigger == triggerDrain {
		// No new snapshot: only the held endpoints' grace ended. Not a push of the merge loop, so
		// the push metrics (lag, duration) are not observed again.
		b.metrics.observeState(state)
		b.mu.Lock()
		b.last = out
		b.mu.Unlock()
		b.log.Info("drain grace over: held endpoints removed", "changed", len(changed), "still held", held)
		return
	}

	b.metrics.observePush(snap, out.Invalid, out.Warnings, state, stages, elapsed)
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
		if inv.Reason != ReasonProducerConflict {
			b.log.Warn("resource not emitted: Istiod would reject it", "collection", inv.Collection, "resource", inv.Namespace+"/"+inv.Name, "source", inv.Source, "reason", inv.Reason, "detail", inv.Detail)
		}
	}
	b.logConflicts(out.Conflicts)
	warned := make(map[istio.Warning]bool, len(out.Warnings))
	for _, w := range out.Warnings {
		warned[w] = true
		if !b.warned[w] {
			b.log.Warn("resource emitted with an adjustment", "collection", w.Collection, "resource", w.Namespace+"/"+w.Name, "source", w.Source, "reason", w.Reason, "detail", w.Detail)
		}
	}
	b.warned = warned
}

// drainExpired runs when a held endpoint's grace ends: it serves the last push's output again,
// without what expired.
func (b *Bridge) drainExpired() {
	b.pushMu.Lock()
	defer b.pushMu.Unlock()
	if b.target == nil || b.drain.stopped {
		return
	}
	b.serve(b.lastSnap, b.target, triggerDrain, time.Now(), nil)
}

// combine merges the producers' outputs: each collection by mergeCollection, then the reports.
func (b *Bridge) combine(prods []*Production) *Output {
	out := &Output{Production: Production{Resources: make(map[string][]*istio.Resource)}}
	colls := make(map[string]bool)
	for _, p := range prods {
		for coll := range p.Resources {
			colls[coll] = true
		}
		out.Invalid = append(out.Invalid, p.Invalid...)
		out.Warnings = append(out.Warnings, p.Warnings...)
	}
	for coll := range b.merged {
		if !colls[coll] {
			delete(b.merged, coll)
		}
	}
	for _, coll := range slices.Sorted(maps.Keys(colls)) {
		inputs := make([][]*istio.Resource, len(prods))
		for i, p := range prods {
			inputs[i] = p.Resources[coll]
		}
		m := mergeCollection(coll, b.names, inputs, b.merged[coll])
		b.merged[coll] = m
		out.Resources[coll] = m.out
		out.Conflicts = append(out.Conflicts, m.conflicts...)
	}
	for _, c := range out.Conflicts {
		out.Invalid = append(out.Invalid, c.invalid())
	}
	return out
}

// logConflicts logs each conflict once, when it appears, and forgets the resolved ones so that a
// conflict coming back is logged again.
func (b *Bridge) logConflicts(cs []Conflict) {
	now := make(map[Conflict]bool, len(cs))
	for _, c := range cs {
		now[c] = true
		if !b.logged[c] {
			b.log.Warn("resource not emitted: another producer emits the same name", "collection", c.Collection,
				"resource", c.Namespace+"/"+c.Name, "served", c.Winner, "served_source", c.WinnerSource,
				"dropped", c.Loser, "dropped_source", c.LoserSource)
		}
	}
	b.logged = now
}

// Pushed reports whether at least one snapshot has been pushed.
func (b *Bridge) Pushed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.pushes > 0
}

// LastPush is when the last push was served (zero before the first).
func (b *Bridge) LastPush() time.Time {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.pushedAt
}

// Output returns what the last push served (nil before the first push). Callers must not modify it.
func (b *Bridge) Output() *Output {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.last
}

// convert returns the MCP form of every collection (for metrics and logs) and the subset that
// differs from the last push (for the MCP server). A collection served before and now absent is
// in both, as nil, so Istiod deletes its resources.
func (b *Bridge) convert(inputs map[string][]*istio.Resource) (state, changed map[string][]*mcp.Resource) {
	state = make(map[string][]*mcp.Resource, len(inputs))
	changed = make(map[string][]*mcp.Resource)
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
func convertCollection(in []*istio.Resource, prev servedCollection) []*mcp.Resource {
	out := make([]*mcp.Resource, len(in))
	var byPtr map[*istio.Resource]*mcp.Resource
	for i, r := range in {
		if i < len(prev.in) && prev.in[i] == r {
			out[i] = prev.out[i]
			continue
		}
		if byPtr == nil {
			byPtr = make(map[*istio.Resource]*mcp.Resource, len(prev.in))
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

func toMCP(r *istio.Resource) *mcp.Resource {
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
	return coll[strings.LastIndexByte(coll, '/')+1:]
}
