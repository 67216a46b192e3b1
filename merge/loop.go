package merge

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Snapshot is the merged state of every registry at one moment.
type Snapshot struct {
	// Services are the merged services sorted by identity (Options.Key). They are read-only: an
	// emitted service is never modified. A service unchanged since the previous snapshot is the
	// same pointer; a changed one is a new pointer.
	Services []*registry.Service
	// Changed counts the services added, changed or removed since the previous snapshot (all of
	// them in the first).
	Changed int
	// OldestEvent is when the oldest registry event folded into this snapshot arrived; zero when
	// none did (a first snapshot of registries that reported nothing).
	OldestEvent time.Time
	// Generation counts snapshots, from 1.
	Generation uint64
	// Rules are the served governance rules of every registry, sorted by name, kind and registry
	// (configuration order). Like services they are read-only, and an unchanged rule is the same
	// pointer from one snapshot to the next. RulesChanged counts those added, changed or removed
	// since the previous snapshot.
	Rules        []*registry.Rule
	RulesChanged int
	// Events counts, per registry, the sink calls folded into this snapshot that changed what it
	// serves (a protection hold ending counts as its registry's event): the cause of the push, for
	// the resource history.
	Events map[string]int
}

// Run emits snapshots until ctx is cancelled, calling emit serially from its own goroutine;
// events arriving while emit runs are batched into the next snapshot. Call it once.
//
// The first snapshot waits until Ready (every registry synced, or restored from a state file)
// or Protection.InitialSyncTimeout, so a restarted bridge never serves an empty state for a
// registry that has not been read: not even for one that is failing, since Istiod keeps what it
// has while the bridge has not answered, and deletes what an answer leaves out.
// After that, only if some service or rule changed, a snapshot is emitted: at once for an
// isolated event (Debounce.Edge leading: no batch pending and the previous snapshot handed on at
// least Debounce.Quiet ago), otherwise once events pause for Debounce.Quiet, at the latest
// Debounce.Max after the first event of the batch.
func (m *Merger) Run(ctx context.Context, emit func(*Snapshot)) {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		panic("merge: Run called twice")
	}
	m.running = true
	m.started = m.clock.Now()
	for _, name := range m.opts.Duplicates.Prefer {
		if m.byName[name] == nil {
			m.log.Warn("duplicates.prefer names a registry that is not configured", "registry", name)
		}
	}
	m.mu.Unlock()

	for {
		now := m.clock.Now()
		snap, next := m.poll(now)
		if snap != nil {
			emit(snap)
			// The leading edge counts from when emit returned: events that arrived while the
			// downstream was busy with this snapshot are a burst, batched by the quiet period.
			done := m.clock.Now()
			m.mu.Lock()
			m.lastEmit = done
			m.mu.Unlock()
			continue
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = m.clock.After(next.Sub(now))
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer:
		}
	}
}

// poll does what is due at now: expires holds, and builds the snapshot if one is due. Otherwise
// it returns when it next has something to do (zero: nothing until an event).
func (m *Merger) poll(now time.Time) (*Snapshot, time.Time) {
	m.mu.Lock()
	next := m.expireHolds(now)
	if !m.emitted && !m.syncTimedOut && !m.allReady() {
		deadline := m.started.Add(m.opts.Protection.InitialSyncTimeout)
		if now.Before(deadline) {
			m.mu.Unlock()
			return nil, earliest(next, deadline)
		}
		m.syncTimedOut = true
		for _, r := range m.regs {
			if r.ready() {
				continue
			}
			r.missedInitialSync = true
			why := "it sent nothing"
			if r.everFailed {
				why = r.lastErr
			}
			// Error level: whatever Istiod had from this registry is deleted by this snapshot.
			m.log.Error("registry could not be read before protection.initialSyncTimeout and no saved state restored it: "+
				"serving without its services until it syncs", "registry", r.name, "error", why,
				"timeout", m.opts.Protection.InitialSyncTimeout.String())
		}
	}
	if len(m.dirty) == 0 && !m.rulesDirty && m.emitted {
		m.mu.Unlock()
		return nil, next
	}
	if len(m.dirty) > 0 || m.rulesDirty {
		due := earliest(m.lastEvent.Add(m.opts.Debounce.Quiet), m.firstEvent.Add(m.opts.Debounce.Max))
		if m.isolated() {
			due = m.firstEvent
		}
		if now.Before(due) {
			m.mu.Unlock()
			return nil, earliest(next, due)
		}
	}
	work := m.takeWork()
	rulesChanged := m.takeRules()
	rules := m.ruleList
	oldest, events, byReg := m.firstEvent, m.events, m.batchRegs
	m.firstEvent, m.lastEvent, m.events, m.batchRegs = time.Time{}, time.Time{}, 0, nil
	m.mu.Unlock()

	// Combining reads only immutable services, so sinks are not blocked meanwhile.
	results := make([]combined, len(work))
	for i, w := range work {
		results[i] = combine(m.opts.Duplicates.Mode, w.ident, w.members)
	}
	changed := m.commit(work, results)

	m.mu.Lock()
	m.updateDuplicates(work, results)
	first := !m.emitted
	if changed == 0 && rulesChanged == 0 && !first {
		m.mu.Unlock()
		return nil, next
	}
	m.emitted = true
	m.mu.Unlock()

	m.gen++
	snap := &Snapshot{Services: make([]*registry.Service, len(m.order)), Changed: changed, OldestEvent: oldest, Generation: m.gen,
		Rules: rules, RulesChanged: rulesChanged, Events: byReg}
	for i, id := range m.order {
		snap.Services[i] = m.merged[id].svc
	}
	m.met.snapshots.Inc()
	m.met.merged.Set(float64(len(snap.Services)))
	m.met.batchEvents.Observe(float64(events))
	if !oldest.IsZero() {
		m.met.batchDelay.Observe(now.Sub(oldest).Seconds())
	}
	return snap, time.Time{}
}

// isolated reports whether the pending batch began with an isolated event, one the leading edge
// emits at once: its first event arrived at least Quiet after the previous snapshot was handed
// on, so nothing suggests more are coming. Callers hold mu.
func (m *Merger) isolated() bool {
	if m.opts.Debounce.Edge != EdgeLeading || m.firstEvent.IsZero() {
		return false
	}
	return m.lastEmit.IsZero() || !m.firstEvent.Before(m.lastEmit.Add(m.opts.Debounce.Quiet))
}

// expireHolds ends the holds whose time is up and returns when the next one ends.
func (m *Merger) expireHolds(now time.Time) time.Time {
	var next time.Time
	for _, r := range m.regs {
		if h := m.opts.Protection.FailureHold; r.failed && h > 0 && !r.withdrawn {
			if until := r.failSince.Add(h); now.Before(until) {
				next = earliest(next, until)
			} else {
				m.log.Error("registry has been failing longer than protection.failureHold: withdrawing its services",
					"registry", r.name, "failedFor", now.Sub(r.failSince).String(), "services", len(r.served),
					"instances", r.servedInstances, "error", r.lastErr)
				r.withdrawn, r.dropSince = true, time.Time{}
				r.reported, r.reportedInstances = map[registry.Key]*registry.Service{}, 0
				m.applyReported(r, now)
				m.withdrawRules(r, now)
				m.endCall(r)
			}
		}
		next = earliest(next, m.expireRuleHold(r, now))
		if !r.failed && !r.dropSince.IsZero() {
			if until := r.dropSince.Add(m.opts.Protection.DropHold); now.Before(until) {
				next = earliest(next, until)
			} else {
				m.reconcile(r, now)
				m.endCall(r)
			}
		}
	}
	return next
}

// groupWork is one identity to recompute, with its members in priority order.
type groupWork struct {
	ident   string
	members []member
}

func (m *Merger) takeWork() []groupWork {
	work := make([]groupWork, 0, len(m.dirty))
	for ident := range m.dirty {
		g := m.groups[ident]
		ms := make([]member, 0, len(g))
		for ref, svc := range g {
			r := m.regs[ref.reg]
			ms = append(ms, member{reg: r.name, prio: m.priority(r), key: ref.key, svc: svc})
		}
		if len(ms) > 1 {
			sort.Slice(ms, func(i, j int) bool {
				if ms[i].prio != ms[j].prio {
					return ms[i].prio < ms[j].prio
				}
				return ms[i].key.String() < ms[j].key.String()
			})
		}
		work = append(work, groupWork{ident: ident, members: ms})
	}
	clear(m.dirty)
	return work
}

// priority orders registries for the duplicate rule: configuration order, or for mode prefer
// the Prefer list first.
func (m *Merger) priority(r *regState) int {
	if m.opts.Duplicates.Mode == DuplicatePrefer {
		if i := slices.Index(m.opts.Duplicates.Prefer, r.name); i >= 0 {
			return i
		}
		return len(m.opts.Duplicates.Prefer) + r.order
	}
	return r.order
}

// commit stores the recomputed services and returns how many changed. Run goroutine only.
func (m *Merger) commit(work []groupWork, results []combined) int {
	changed, reorder := 0, false
	for i, w := range work {
		res, prev := results[i], m.merged[w.ident]
		switch {
		case res.svc == nil:
			if prev != nil {
				delete(m.merged, w.ident)
				changed++
				reorder = true
			}
		case prev != nil && slices.Equal(prev.from, res.from):
			// Built from the same services: the same content, so the same pointer.
		default:
			if prev == nil {
				reorder = true
			}
			m.merged[w.ident] = &mergedEntry{svc: res.svc, from: res.from}
			changed++
		}
	}
	if reorder {
		m.order = make([]string, 0, len(m.merged))
		for id := range m.merged {
			m.order = append(m.order, id)
		}
		sort.Strings(m.order)
	}
	return changed
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
