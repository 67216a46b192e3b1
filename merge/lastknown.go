package merge

import (
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// LastKnown is one registry's served services, as a state file keeps them across restarts so
// that Restore can serve them again before the registry has been read.
type LastKnown struct {
	Registry string
	// Stale: the services were restored and the registry has not confirmed them in this run.
	Stale bool
	// Services are what is served for the registry: what it last reported, or what empty
	// protection holds of it (a failure, a mass drop). They are the merger's own, read-only
	// values: never modify them. Unordered.
	Services []*registry.Service
	// Rules are the registry's served governance rules, read-only and unordered; nil when they
	// are unknown (the registry never sent rules in this run and none were restored), which a
	// state file keeps apart from "no rules".
	Rules []*registry.Rule
}

// LastKnown returns the served services of every registry whose state is known (synced in this
// run, or restored), in configuration order. A registry never read and not restored is left
// out: its state is unknown, not empty, and saving it as empty would let a later restart serve
// nothing for it.
//
// Served state rather than the latest report is what is worth keeping: it is what Istiod was
// given, and it keeps protection across a restart (a held mass drop is still held against it).
// The cost is one pointer copy per service under the merger's lock; call it when about to save,
// not on every change (see Revision).
func (m *Merger) LastKnown() []LastKnown {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]LastKnown, 0, len(m.regs))
	for _, r := range m.regs {
		if !r.ready() {
			continue
		}
		lk := LastKnown{Registry: r.name, Stale: r.stale, Services: make([]*registry.Service, 0, len(r.served))}
		for _, e := range r.served {
			lk.Services = append(lk.Services, e.svc)
		}
		lk.Rules = r.lastKnownRules()
		out = append(out, lk)
	}
	return out
}

// Revision returns a counter that grows whenever a registry's served services or rules change or
// a registry syncs for the first time, and how many registries have synced in this run. It is
// cheap, so a saver can check it on every Changes signal and call LastKnown only when it saves.
func (m *Merger) Revision() (revision uint64, synced int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revision, m.syncedCount
}

// Changes returns a channel that receives after Revision changed; signals are coalesced (the
// channel holds at most one), so a slow receiver sees one signal for many changes. It has a
// single receiver: the state saver.
func (m *Merger) Changes() <-chan struct{} { return m.changes }
