package merge

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	synced, healthy, stale, protected *prometheus.GaugeVec
	services, instances, lastSync     *prometheus.GaugeVec
	failures                          *prometheus.CounterVec
	rejected                          *prometheus.GaugeVec
	merged, duplicates                prometheus.Gauge
	snapshots                         prometheus.Counter
	batchEvents, batchDelay           prometheus.Histogram
}

func newMetrics() *metrics {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append([]string{"registry"}, labels...))
	}
	return &metrics{
		synced:    gauge("mcp_bridge_registry_synced", "1 once the registry has sent its full state."),
		healthy:   gauge("mcp_bridge_registry_healthy", "1 while the registry is synced and not failed."),
		stale:     gauge("mcp_bridge_registry_stale", "1 while the registry's served state is restored from a previous run and not yet confirmed by it."),
		protected: gauge("mcp_bridge_registry_protected", "1 while empty protection holds the registry's last-known state, by reason (failure, mass-drop).", "reason"),
		services:  gauge("mcp_bridge_registry_services", "Services served from the registry."),
		instances: gauge("mcp_bridge_registry_instances", "Instances served from the registry."),
		lastSync:  gauge("mcp_bridge_registry_last_sync_timestamp_seconds", "When the registry last sent its full state."),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_registry_failures_total",
			Help: "Failures the registry's adapter reported (unreachable, session lost, ...).",
		}, []string{"registry"}),
		rejected: gauge("mcp_bridge_registry_rejected_entries", "Registry entries currently rejected as unusable, by reason.", "reason"),
		merged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_merge_services",
			Help: "Services in the last merged snapshot.",
		}),
		duplicates: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_merge_duplicate_services",
			Help: "Services reported by several registries (combined by the duplicates rule; see /debug/registries).",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_merge_snapshots_total",
			Help: "Merged snapshots emitted.",
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_merge_batch_events",
			Help:    "Registry events folded into one snapshot.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		batchDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_merge_batch_delay_seconds",
			Help:    "Time from the oldest registry event of a snapshot to its emission (the debounce's share of the event-to-push lag).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		m.synced, m.healthy, m.stale, m.protected, m.services, m.instances, m.lastSync,
		m.failures, m.rejected, m.merged, m.duplicates, m.snapshots, m.batchEvents, m.batchDelay,
	} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// regMetrics are one registry's series, looked up once.
type regMetrics struct {
	synced, healthy, stale, failureHeld, dropHeld prometheus.Gauge
	services, instances, lastSync                 prometheus.Gauge
	failures                                      prometheus.Counter
	rejected                                      func(reason string) prometheus.Gauge
}

func (m *metrics) forRegistry(name string) regMetrics {
	return regMetrics{
		synced:      m.synced.WithLabelValues(name),
		healthy:     m.healthy.WithLabelValues(name),
		stale:       m.stale.WithLabelValues(name),
		failureHeld: m.protected.WithLabelValues(name, "failure"),
		dropHeld:    m.protected.WithLabelValues(name, "mass-drop"),
		services:    m.services.WithLabelValues(name),
		instances:   m.instances.WithLabelValues(name),
		lastSync:    m.lastSync.WithLabelValues(name),
		failures:    m.failures.WithLabelValues(name),
		rejected:    func(reason string) prometheus.Gauge { return m.rejected.WithLabelValues(name, reason) },
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// updateRegMetrics refreshes r's gauges. Under m.mu.
func (m *Merger) updateRegMetrics(r *regState) {
	r.met.synced.Set(b2f(r.synced))
	r.met.healthy.Set(b2f(r.synced && !r.failed))
	r.met.stale.Set(b2f(r.stale))
	r.met.failureHeld.Set(b2f(r.failed && !r.withdrawn))
	r.met.dropHeld.Set(b2f(!r.failed && !r.dropSince.IsZero()))
	r.met.services.Set(float64(len(r.served)))
	r.met.instances.Set(float64(r.servedInstances))
	if !r.lastSync.IsZero() {
		r.met.lastSync.Set(float64(r.lastSync.UnixNano()) / 1e9)
	}
}
