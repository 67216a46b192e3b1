// Package merge combines what several registry adapters report into one state and hands it on
// as snapshots, batched (debounce) and protected against registries that fail or suddenly lose
// their instances.
//
// Each adapter reports to its own Sink. Per registry the merger keeps two states: what the
// registry reports now, and what is served. They are the same except while empty protection
// holds the served state:
//
//   - Failure: after Sink.Fail the served state is frozen exactly as it was (changes that
//     arrive are recorded but not served) until the Replace that ends the failure, or until
//     Protection.FailureHold passes, when the registry's services are withdrawn.
//   - Mass drop: a Replace that keeps fewer than (1 - MaxDropRatio) of the instances served is
//     held: the served state stays until the reported state is within the ratio again (by a
//     later Replace or Upserts) or until Protection.DropHold passes, when the reported state is
//     served as it then is. Only Replace can start a hold; Upsert and Delete from a registry
//     that is neither failed nor held are served at once, including a service losing its last
//     instance and the deregistration of a service, because an adapter sends those only for
//     changes it saw happen.
//
// Governance rules (Sink.ReplaceRules, UpsertRules, DeleteRules) are kept per registry beside its
// services with the same failure and mass-drop protection, and never combined across registries
// (rules.go); Snapshot.Rules carries them.
//
// Services from different registries with the same Options.Key are combined by the declared
// Duplicates rule. Run emits snapshots of the combined state; each emitted service is immutable,
// and an unchanged service keeps its pointer from one snapshot to the next.
//
// Start-up: the first snapshot waits until every registry is ready, meaning it has synced (a
// Replace arrived) or its last-known state was restored (Restore, from a state file kept across
// restarts), or until Protection.InitialSyncTimeout. A registry that fails before its first sync
// is not ready unless it has restored state: emitting without it would tell Istiod that its
// services are gone. LastKnown, Revision and Changes let a state file keep what each registry
// serves; the merger itself does no file I/O.
package merge

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mcp-bridge/mcp-bridge/internal/clock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Merger is the merge layer. Create it with New, declare every registry with Sink, optionally
// seed last-known state with Restore, start the adapters, and call Run once.
type Merger struct {
	opts  Options
	log   *slog.Logger
	clock clock.Clock
	met   *metrics
	wake  chan struct{} // capacity 1: a pending wake-up for Run

	changes chan struct{} // capacity 1: a pending "served state changed" for the state saver

	mu      sync.Mutex
	regs    []*regState
	byName  map[string]*regState
	groups  map[string]map[memberRef]*registry.Service // identity -> served services with it
	dirty   map[string]struct{}                        // identities to recompute
	touched bool                                       // the current sink call dirtied something
	// The batch being debounced.
	firstEvent, lastEvent time.Time
	// lastEmit is when the previous snapshot's emit returned: the leading edge's reference.
	lastEmit     time.Time
	events       int
	batchRegs    map[string]int // events of the batch per registry (Snapshot.Events)
	running      bool
	started      time.Time
	emitted      bool // a snapshot was emitted
	syncTimedOut bool
	dups         map[string]*DuplicateStatus
	// revision grows with every change of a registry's served services and every first sync;
	// notified is the revision Changes last announced.
	revision, notified uint64
	syncedCount        int
	// Governance rules (rules.go): rulesDirty says a served rule changed since the last
	// snapshot; ruleSet and ruleList are the rules of the last snapshot.
	rulesDirty bool
	ruleSet    map[ruleRef]*registry.Rule
	ruleList   []*registry.Rule

	// Owned by the Run goroutine.
	merged map[string]*mergedEntry
	order  []string // identities in merged, sorted
	gen    uint64
}

type memberRef struct {
	reg int // regState.order
	key registry.Key
}

type mergedEntry struct {
	svc  *registry.Service
	from []*registry.Service // the member services svc was built from
}

// regState is one registry's state. Guarded by Merger.mu.
type regState struct {
	name  string
	order int // declaration (configuration) order

	served          map[registry.Key]servedEntry
	servedInstances int
	// reported is what the registry says now; it equals served unless protection holds.
	reported          map[registry.Key]*registry.Service
	reportedInstances int

	synced            bool // a Replace arrived
	restored          bool // Restore seeded the served state before the first Replace
	lastSync          time.Time
	failed            bool // Fail since the last Replace
	everFailed        bool
	failSince         time.Time
	withdrawn         bool      // FailureHold passed and the services were withdrawn
	dropSince         time.Time // non-zero while a mass drop is held
	stale             bool      // served state came from Restore and no Replace confirmed it yet
	missedInitialSync bool
	lastErr           string // the current failure's latest error; "" while not failed
	lastErrAt         time.Time
	recovered         *RecoveredFailure // the last failure that ended
	failures          uint64
	rejected          rejections
	met               regMetrics
	rules             ruleState
}

type servedEntry struct {
	svc   *registry.Service
	ident string
}

// New returns a Merger. opts.Key is required; zero values of the other fields are defaults.
func New(opts Options) (*Merger, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("merge options: %w", err)
	}
	if opts.Key == nil {
		return nil, fmt.Errorf("merge options: Key is required (wiring passes translate's host naming)")
	}
	m := &Merger{
		opts:    opts,
		log:     opts.Logger,
		clock:   opts.Clock,
		met:     newMetrics(),
		wake:    make(chan struct{}, 1),
		changes: make(chan struct{}, 1),
		byName:  map[string]*regState{},
		groups:  map[string]map[memberRef]*registry.Service{},
		dirty:   map[string]struct{}{},
		dups:    map[string]*DuplicateStatus{},
		merged:  map[string]*mergedEntry{},
	}
	if opts.Metrics != nil {
		if err := m.met.register(opts.Metrics); err != nil {
			return nil, fmt.Errorf("merge: registering metrics: %w", err)
		}
	}
	for _, name := range opts.Registries {
		m.declare(name)
	}
	return m, nil
}

// Sink returns the sink the adapter of the registry called name reports to; every call for the
// same name reports to the same registry. A name not in Options.Registries is declared by its
// first Sink call, after those: declare every registry (in Options.Registries or by calling Sink)
// before Run, since readiness waits for the registries declared.
func (m *Merger) Sink(name string) registry.Sink {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &sink{m: m, r: m.declare(name)}
}

// declare returns the registry called name, adding it if new. Under m.mu (or before sharing m).
func (m *Merger) declare(name string) *regState {
	if r := m.byName[name]; r != nil {
		return r
	}
	r := &regState{
		name:     name,
		order:    len(m.regs),
		served:   map[registry.Key]servedEntry{},
		reported: map[registry.Key]*registry.Service{},
		rejected: newRejections(),
		met:      m.met.forRegistry(name),
		rules:    newRuleState(),
	}
	m.regs = append(m.regs, r)
	m.byName[name] = r
	m.updateRegMetrics(r)
	return r
}

// Restore seeds a registry's last-known services (from a state file kept across restarts). The
// registry then counts as ready at once: the first snapshot serves them instead of waiting for
// (or, after Protection.InitialSyncTimeout, going without) a registry that cannot be read. They
// are flagged stale until the registry's first Replace, which is compared with them like any
// Replace (a restored state the registry no longer has in full is held as a mass drop). An empty
// list restores a registry known to have had no services. Restore after that Replace, or for an
// undeclared registry, is ignored. Call it before the adapters start. The merger takes ownership
// of services.
func (m *Merger) Restore(name string, services []*registry.Service) {
	m.mu.Lock()
	r := m.byName[name]
	m.mu.Unlock()
	if r == nil {
		m.log.Warn("restored state for a registry that is not configured is ignored", "registry", name)
		return
	}
	incoming := m.normalize(r, services)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.synced {
		m.log.Info("restored state ignored: the registry has already synced", "registry", name)
		return
	}
	now := m.clock.Now()
	r.reported, r.reportedInstances = incoming, countInstances(incoming)
	r.stale, r.restored = true, true
	m.applyReported(r, now) // even while failed: this is the last-known state being seeded
	m.log.Info("restored last-known state; stale until the registry syncs", "registry", name, "services", len(r.served), "instances", r.servedInstances)
	m.endCall(r)
}

// Ready reports whether the first snapshot may go out: every declared registry has synced once
// or has restored state, or the initial-sync timeout has passed. A registry that failed before
// its first sync, with nothing restored, keeps it false until the timeout. Once true it stays
// true.
func (m *Merger) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.emitted || m.syncTimedOut || m.allReady()
}

func (m *Merger) allReady() bool {
	for _, r := range m.regs {
		if !r.ready() {
			return false
		}
	}
	return true
}

// ready tells whether the registry's state is known: read from the registry in this run, or
// restored from the previous one.
func (r *regState) ready() bool { return r.synced || r.restored }

// sink is one registry's registry.Sink.
type sink struct {
	m *Merger
	r *regState
}

func (s *sink) Replace(services []*registry.Service) { s.m.replace(s.r, services) }
func (s *sink) Upsert(services []*registry.Service)  { s.m.upsert(s.r, services) }
func (s *sink) Delete(keys []registry.Key)           { s.m.delete(s.r, keys) }
func (s *sink) Fail(err error)                       { s.m.fail(s.r, err) }
func (s *sink) Reject(where, reason string, err error) {
	s.m.reject(s.r, where, reason, err)
}
func (s *sink) Accept(where string) { s.m.accept(s.r, where) }

// normalize stamps services with their registry and orders their instances, so equal content
// compares equal. It runs outside the lock: the merger owns the services from here on.
func (m *Merger) normalize(r *regState, services []*registry.Service) map[registry.Key]*registry.Service {
	out := make(map[registry.Key]*registry.Service, len(services))
	for _, svc := range services {
		if svc == nil {
			continue
		}
		// Write only what differs: an adapter may send again a service it sent before, which
		// the merger may be reading concurrently.
		if svc.Registry != r.name {
			svc.Registry = r.name
		}
		if !sort.SliceIsSorted(svc.Instances, func(i, j int) bool { return svc.Instances[i].ID < svc.Instances[j].ID }) {
			svc.SortInstances()
		}
		k := svc.Key()
		if _, dup := out[k]; dup {
			m.log.Warn("registry sent the same service twice in one update; the last one counts", "registry", r.name, "service", k.String())
		}
		out[k] = svc
	}
	return out
}

func (m *Merger) replace(r *regState, services []*registry.Service) {
	incoming := m.normalize(r, services)
	// Unchanged services keep their old pointer, so nothing downstream recomputes them. The
	// comparison, the bulk of a large resync, runs outside the lock on immutable services: if a
	// concurrent call replaced one meanwhile, the old pointer still has this Replace's content.
	m.mu.Lock()
	prev := make(map[registry.Key]*registry.Service, len(incoming))
	for k := range incoming {
		if old := r.reported[k]; old != nil {
			prev[k] = old
		}
	}
	m.mu.Unlock()
	for k, svc := range incoming {
		if old := prev[k]; old != nil && equalService(old, svc) {
			incoming[k] = old
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	r.reported, r.reportedInstances = incoming, countInstances(incoming)
	if r.failed {
		m.log.Info("registry recovered", "registry", r.name, "failedFor", now.Sub(r.failSince).String())
		r.failed, r.withdrawn = false, false
		// The error is history now: shown as such, with its times, not as the current state.
		r.recovered = &RecoveredFailure{Error: r.lastErr, Since: r.failSince, LastErrorTime: r.lastErrAt, RecoveredAt: now}
		r.lastErr, r.lastErrAt = "", time.Time{}
	}
	if !r.synced {
		m.syncedCount++
		m.revision++ // a first sync is worth saving even if it changed nothing served
	}
	r.synced, r.lastSync, r.stale = true, now, false
	if r.dropSince.IsZero() && m.massDrop(r.servedInstances, r.reportedInstances) {
		r.dropSince = now
		m.log.Warn("registry reports far fewer instances than it did; holding its last-known state",
			"registry", r.name, "served", r.servedInstances, "reported", r.reportedInstances,
			"maxDropRatio", m.opts.Protection.MaxDropRatio, "hold", m.opts.Protection.DropHold.String())
	}
	m.reconcile(r, now)
	m.reconcileRules(r, now) // rules recorded while failed are served with the recovery
	m.endCall(r)
}

func (m *Merger) upsert(r *regState, services []*registry.Service) {
	incoming := m.normalize(r, services)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var changed []registry.Key
	for k, svc := range incoming {
		old := r.reported[k]
		if old != nil {
			if equalService(old, svc) {
				continue
			}
			r.reportedInstances -= len(old.Instances)
		}
		r.reported[k] = svc
		r.reportedInstances += len(svc.Instances)
		changed = append(changed, k)
	}
	m.propagate(r, changed, now)
	m.endCall(r)
}

func (m *Merger) delete(r *regState, keys []registry.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var changed []registry.Key
	for _, k := range keys {
		if old, ok := r.reported[k]; ok {
			r.reportedInstances -= len(old.Instances)
			delete(r.reported, k)
			changed = append(changed, k)
		}
	}
	m.propagate(r, changed, now)
	m.endCall(r)
}

// propagate serves changes of the reported state, unless protection holds it.
func (m *Merger) propagate(r *regState, keys []registry.Key, now time.Time) {
	switch {
	case len(keys) == 0:
	case r.failed:
		// Frozen until the Replace that ends the failure.
	case !r.dropSince.IsZero():
		m.reconcile(r, now) // the change may bring the registry back within the ratio
	default:
		for _, k := range keys {
			m.setServed(r, k, r.reported[k], now)
		}
	}
}

func (m *Merger) fail(r *regState, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	msg := "registry failed (no error given)"
	if err != nil {
		msg = err.Error()
	}
	r.failures++
	r.met.failures.Inc()
	r.lastErr, r.lastErrAt, r.everFailed = msg, now, true
	if !r.failed {
		r.failed, r.failSince = true, now
		hold := "until it recovers"
		if h := m.opts.Protection.FailureHold; h > 0 {
			hold = "for " + h.String()
		}
		m.log.Warn("registry failed; its last-known services are held "+hold, "registry", r.name, "error", msg,
			"services", len(r.served), "instances", r.servedInstances)
	}
	m.endCall(r)
}

// reconcile serves what r reports unless protection holds it; it releases a held mass drop
// once the reported state is within the ratio again or the hold has lasted DropHold.
func (m *Merger) reconcile(r *regState, now time.Time) {
	if r.failed {
		return
	}
	if !r.dropSince.IsZero() {
		drop := m.massDrop(r.servedInstances, r.reportedInstances)
		if drop && now.Before(r.dropSince.Add(m.opts.Protection.DropHold)) {
			return
		}
		if drop {
			m.log.Warn("held drop accepted after the hold time: serving what the registry reports",
				"registry", r.name, "served", r.servedInstances, "reported", r.reportedInstances, "heldFor", now.Sub(r.dropSince).String())
		} else {
			m.log.Info("registry is back within the drop ratio; protection released",
				"registry", r.name, "served", r.servedInstances, "reported", r.reportedInstances)
		}
		r.dropSince = time.Time{}
	}
	m.applyReported(r, now)
}

// massDrop tells whether reported instances fall below the share of served ones a Replace may
// keep. It applies at every size: with the default ratio 2 -> 0 is a drop and 2 -> 1 is not.
func (m *Merger) massDrop(served, reported int) bool {
	return served > 0 && float64(reported) < float64(served)*(1-m.opts.Protection.MaxDropRatio)
}

// applyReported makes the served state of r what it reports.
func (m *Merger) applyReported(r *regState, now time.Time) {
	for k := range r.served {
		if _, ok := r.reported[k]; !ok {
			m.setServed(r, k, nil, now)
		}
	}
	for k, svc := range r.reported {
		m.setServed(r, k, svc, now)
	}
}

// setServed serves svc as r's service k (nil: none) and marks the identities involved dirty.
func (m *Merger) setServed(r *regState, k registry.Key, svc *registry.Service, now time.Time) {
	old, had := r.served[k]
	if had && old.svc == svc {
		return
	}
	if had || svc != nil {
		m.revision++
	}
	ref := memberRef{reg: r.order, key: k}
	if had {
		r.servedInstances -= len(old.svc.Instances)
		delete(m.groups[old.ident], ref)
		if len(m.groups[old.ident]) == 0 {
			delete(m.groups, old.ident)
		}
		m.markDirty(old.ident, now)
	}
	if svc == nil {
		delete(r.served, k)
		return
	}
	ident := m.identity(svc)
	r.served[k] = servedEntry{svc: svc, ident: ident}
	r.servedInstances += len(svc.Instances)
	g := m.groups[ident]
	if g == nil {
		g = map[memberRef]*registry.Service{}
		m.groups[ident] = g
	}
	g[ref] = svc
	m.markDirty(ident, now)
}

// identity is Options.Key, or for an empty key one no other service shares (registry and key
// contain characters no host name has).
func (m *Merger) identity(svc *registry.Service) string {
	if id := m.opts.Key(svc); id != "" {
		return id
	}
	return svc.Registry + "|" + svc.Key().String()
}

func (m *Merger) markDirty(ident string, now time.Time) {
	m.dirty[ident] = struct{}{}
	if m.firstEvent.IsZero() {
		m.firstEvent = now
	}
	m.lastEvent = now
	m.touched = true
}

// endCall finishes a sink call: counts it into the batch if it changed the served state,
// refreshes r's metrics, wakes Run (readiness and hold deadlines may have changed too) and
// announces a new revision on Changes.
func (m *Merger) endCall(r *regState) {
	if m.touched {
		m.events++
		if m.batchRegs == nil {
			m.batchRegs = make(map[string]int)
		}
		m.batchRegs[r.name]++
		m.touched = false
	}
	m.updateRegMetrics(r)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	if m.revision != m.notified {
		m.notified = m.revision
		select {
		case m.changes <- struct{}{}:
		default:
		}
	}
}

func countInstances(services map[registry.Key]*registry.Service) int {
	n := 0
	for _, s := range services {
		n += len(s.Instances)
	}
	return n
}
