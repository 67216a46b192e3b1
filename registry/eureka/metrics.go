package eureka

import "github.com/prometheus/client_golang/prometheus"

// metrics are the adapter's own collectors; the registerer already adds the registry label.
// A nil *metrics (no registerer) records nothing.
type metrics struct {
	fetches    *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	mismatches prometheus.Counter
	instances  prometheus.Gauge
	rejected   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_eureka_fetches_total",
			Help: "Fetches of /apps (kind full) and /apps/delta (kind delta), by result (ok, error).",
		}, []string{"kind", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_eureka_fetched_bytes_total",
			Help: "Answer bytes read from the Eureka servers, by kind (full, delta).",
		}, []string{"kind"}),
		mismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_eureka_hash_mismatches_total",
			Help: "Deltas whose result did not match the server's apps__hashcode (each followed by a full fetch).",
		}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_eureka_instances",
			Help: "Instances the server lists (every application, before the apps/exclude filters).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_eureka_rejected_total",
			Help: "Instances that could not be used, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.fetches, m.bytes, m.mismatches, m.instances, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) fetched(kind string, err error, n int64) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.fetches.WithLabelValues(kind, result).Inc()
	m.bytes.WithLabelValues(kind).Add(float64(n))
}

func (m *metrics) mismatch() {
	if m != nil {
		m.mismatches.Inc()
	}
}

func (m *metrics) setInstances(n int) {
	if m != nil {
		m.instances.Set(float64(n))
	}
}

func (m *metrics) reject(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}
