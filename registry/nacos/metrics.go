package nacos

import "github.com/prometheus/client_golang/prometheus"

// metrics are the adapter's own collectors; the registerer already adds the registry label.
type metrics struct {
	up              prometheus.Gauge
	lastSuccess     prometheus.Gauge
	polls           *prometheus.CounterVec
	pollDuration    prometheus.Histogram
	subscriptions   prometheus.Gauge
	instances       prometheus.Gauge
	pushes          prometheus.Counter
	pushToSink      prometheus.Histogram
	subscribeErrors prometheus.Counter
	resyncs         prometheus.Counter
	rejected        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_nacos_up",
			Help: "1 when the last service list poll of the Nacos servers succeeded, else 0.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_nacos_last_success_timestamp_seconds",
			Help: "When a service list poll last succeeded.",
		}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_nacos_polls_total",
			Help: "Service list polls, by result (ok, error).",
		}, []string{"result"}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_nacos_poll_duration_seconds",
			Help:    "How long listing the services of every selected namespace and group took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_nacos_subscriptions",
			Help: "Nacos services subscribed to.",
		}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_nacos_instances",
			Help: "Instances of the subscribed services, as last pushed.",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_nacos_pushes_total",
			Help: "Instance lists received (server pushes and subscription answers).",
		}),
		pushToSink: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_nacos_push_to_sink_seconds",
			Help:    "From the oldest push of a batch to its services being handed to the merge layer.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		subscribeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_nacos_subscribe_errors_total",
			Help: "Subscriptions that failed (retried at the next poll).",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_nacos_resyncs_total",
			Help: "Full re-reads of every subscribed service (periodic and after recovery).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_nacos_rejected_total",
			Help: "Malformed instances found, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.up, m.lastSuccess, m.polls, m.pollDuration, m.subscriptions,
		m.instances, m.pushes, m.pushToSink, m.subscribeErrors, m.resyncs, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
