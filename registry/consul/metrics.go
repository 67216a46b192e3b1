package consul

import "github.com/prometheus/client_golang/prometheus"

// metrics are the adapter's own collectors; the registerer already adds the registry label.
type metrics struct {
	up          prometheus.Gauge
	requests    prometheus.Counter
	watches     prometheus.Gauge
	indexResets prometheus.Counter
	instances   prometheus.Gauge
	// datacentersDown counts datacenters failing while others answer (no label per datacenter:
	// /debug/registries names them).
	datacentersDown prometheus.Gauge
	rejected        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_consul_up",
			Help: "1 while every watched Consul query answers, 0 while the registry is failed (last-known state served).",
		}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_consul_requests_total",
			Help: "HTTP requests made to Consul (blocking queries and the rest).",
		}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_consul_watched_queries",
			Help: "Blocking queries running: one service list per datacenter and one health query per selected service.",
		}),
		indexResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_consul_index_resets_total",
			Help: "Answers whose index went backwards (agent restarted or lost its state), each followed by a full re-read.",
		}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_consul_instances",
			Help: "Instances of the selected services, as last read.",
		}),
		datacentersDown: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_consul_datacenters_down",
			Help: "Watched datacenters whose queries fail while others answer; their last-known services are served (/debug/registries names them).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_consul_rejected_total",
			Help: "Unusable instances found, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.up, m.requests, m.watches, m.indexResets, m.instances, m.datacentersDown, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
