package bridge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
)

type metrics struct {
	pushes       prometheus.Counter
	pushDuration *prometheus.HistogramVec
	lag          prometheus.Histogram
	resources    *prometheus.GaugeVec
	invalid      *prometheus.GaugeVec
	warnings     *prometheus.GaugeVec
	lastPush     prometheus.Gauge
	staged       prometheus.Counter
	held         prometheus.Gauge

	// seenCollections remembers every collection pushed, so emptied ones are pushed empty and
	// their gauges reset. Only the push goroutine touches it.
	seenCollections map[string]bool
	seenReasons     map[string]bool
	seenWarnings    map[string]bool
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_pushes_total",
			Help: "Snapshots translated and handed to the MCP server.",
		}),
		pushDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcp_bridge_push_duration_seconds",
			Help:    "Time to turn a merged snapshot into served resources, by stage (each producer by name: translate, static; and total).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"stage"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_registry_event_to_push_seconds",
			Help:    "Time from the oldest registry event folded into a push to the push reaching the MCP server (debounce included).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		resources: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcp_bridge_resources",
			Help: "Resources currently served, by kind.",
		}, []string{"kind"}),
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcp_bridge_invalid_resources",
			Help: "Resources not emitted because Istiod would reject them or another producer emits the same name (producer-conflict), by reason (see /debug/invalid).",
		}, []string{"reason"}),
		warnings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcp_bridge_resource_warnings",
			Help: "Warnings on emitted resources (a label rewritten, an endpoint left out, ...), by reason (see /debug/invalid).",
		}, []string{"reason"}),
		lastPush: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_last_push_timestamp_seconds",
			Help: "Unix time of the last push.",
		}),
		staged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_staged_pushes_total",
			Help: "Pushes that changed a service's routing (VirtualService/DestinationRule) and removed endpoints of it, so served the routing change first and kept the removed endpoints for the drain grace.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_held_endpoints",
			Help: "Endpoints (inline ServiceEntry endpoints and WorkloadEntries) a staged push is serving past their removal, until the drain grace ends (see /debug/rules, draining).",
		}),
		seenCollections: make(map[string]bool),
		seenReasons:     make(map[string]bool),
		seenWarnings:    make(map[string]bool),
	}
	reg.MustRegister(m.pushes, m.pushDuration, m.lag, m.resources, m.invalid, m.warnings, m.lastPush, m.staged, m.held)
	return m
}

func (m *metrics) observePush(snap *merge.Snapshot, invalid []istio.Invalid, warned []istio.Warning, state map[string][]*mcp.Resource, stages map[string]time.Duration, total time.Duration) {
	m.pushes.Inc()
	for stage, d := range stages {
		m.pushDuration.WithLabelValues(stage).Observe(d.Seconds())
	}
	m.pushDuration.WithLabelValues("total").Observe(total.Seconds())
	if !snap.OldestEvent.IsZero() {
		m.lag.Observe(time.Since(snap.OldestEvent).Seconds())
	}
	m.observeState(state)
	byReason := make(map[string]int)
	for _, inv := range invalid {
		byReason[inv.Reason]++
	}
	setByReason(m.invalid, m.seenReasons, byReason)
	warnings := make(map[string]int)
	for _, w := range warned {
		warnings[w.Reason]++
	}
	setByReason(m.warnings, m.seenWarnings, warnings)
	m.lastPush.SetToCurrentTime()
}

// setByReason sets a by-reason gauge to counts, zeroing reasons seen before and absent now.
func setByReason(g *prometheus.GaugeVec, seen map[string]bool, counts map[string]int) {
	for reason := range seen {
		if counts[reason] == 0 {
			g.WithLabelValues(reason).Set(0)
		}
	}
	for reason, n := range counts {
		seen[reason] = true
		g.WithLabelValues(reason).Set(float64(n))
	}
}

// observeState sets the served-resources gauge.
func (m *metrics) observeState(state map[string][]*mcp.Resource) {
	for coll, rs := range state {
		m.seenCollections[coll] = true
		m.resources.WithLabelValues(collectionKind(coll)).Set(float64(len(rs)))
	}
}

// observeDrain counts a staged push and sets the held-endpoints gauge.
func (m *metrics) observeDrain(staged bool, held int) {
	if staged {
		m.staged.Inc()
	}
	m.held.Set(float64(held))
}
