package merge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Registries change at runtime when the configuration is reloaded. The functions here keep the
// merger's invariants while they do: a registry's services leave the merged state only by its
// removal, and the identities of the others follow a new Key.

// AddRegistry declares a registry while the merger runs (a configuration reload), after those
// declared so far: it comes last in the duplicates priority. Before the first snapshot it is
// awaited like any other; after it, readiness stays true (a running bridge never becomes unready
// because a registry was added) and its services are served as it reports them. Adding a
// registry that exists is a no-op. It reports whether the registry is new.
func (m *Merger) AddRegistry(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName[name] != nil {
		return false
	}
	m.declare(name)
	m.log.Info("registry added", "registry", name)
	return true
}

// RemoveRegistry withdraws a registry's services and governance rules from the merged state and forgets it: its
// status, metrics and last-known state. Its adapter must have stopped: a Sink obtained before
// must not be used again. Unknown names are ignored. It reports whether the registry existed.
func (m *Merger) RemoveRegistry(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byName[name]
	if r == nil {
		return false
	}
	now := m.clock.Now()
	services, instances := len(r.served), r.servedInstances
	for k := range r.served {
		m.setServed(r, k, nil, now)
	}
	m.withdrawRules(r, now)
	if r.synced {
		m.syncedCount--
	}
	delete(m.byName, name)
	// Registry order numbers are positions in m.regs and live in the group members' refs: close
	// the gap and renumber those refs (the removed registry has none left).
	m.regs = append(m.regs[:r.order], m.regs[r.order+1:]...)
	for i, x := range m.regs {
		x.order = i
	}
	for ident, g := range m.groups {
		renumbered := make(map[memberRef]*registry.Service, len(g))
		for ref, svc := range g {
			if ref.reg > r.order {
				ref.reg--
			}
			renumbered[ref] = svc
		}
		m.groups[ident] = renumbered
	}
	m.met.deleteRegistry(name)
	m.log.Info("registry removed: its services are withdrawn", "registry", name, "services", services, "instances", instances)
	m.revision++
	m.endCall(r)
	return true
}

// Rekey recomputes every served service's identity with Options.Key, after what Key computes
// changed (a reload that changes host naming). Services whose identity changed are recomputed in
// the next snapshot, under both their old and new identity.
func (m *Merger) Rekey() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	moved := 0
	for _, r := range m.regs {
		for k, e := range r.served {
			ident := m.identity(e.svc)
			if ident == e.ident {
				continue
			}
			ref := memberRef{reg: r.order, key: k}
			delete(m.groups[e.ident], ref)
			if len(m.groups[e.ident]) == 0 {
				delete(m.groups, e.ident)
			}
			m.markDirty(e.ident, now)
			g := m.groups[ident]
			if g == nil {
				g = map[memberRef]*registry.Service{}
				m.groups[ident] = g
			}
			g[ref] = e.svc
			r.served[k] = servedEntry{svc: e.svc, ident: ident}
			m.markDirty(ident, now)
			moved++
		}
	}
	if moved > 0 {
		m.log.Info("service identities changed with the configuration", "services", moved)
		m.events++
		m.touched = false
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// deleteRegistry drops a removed registry's series.
func (m *metrics) deleteRegistry(name string) {
	l := prometheus.Labels{"registry": name}
	for _, v := range []*prometheus.GaugeVec{m.synced, m.healthy, m.stale, m.protected, m.services, m.instances, m.lastSync, m.rejected} {
		v.DeletePartialMatch(l)
	}
	m.failures.DeletePartialMatch(l)
}
