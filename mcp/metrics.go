package mcp

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unsetCollection labels metrics of requested collections that were never Set (MeshConfig,
// unknown types): clients choose those type URLs, so they must not become label values.
const unsetCollection = "unset"

type metrics struct {
	clients         *prometheus.GaugeVec   // protocol
	responses       *prometheus.CounterVec // collection, protocol
	sentBytes       *prometheus.CounterVec // collection, protocol
	nacks           *prometheus.CounterVec // collection
	marshalled      *prometheus.CounterVec // collection
	marshalledBytes *prometheus.CounterVec // collection
	builtBytes      *prometheus.CounterVec // collection
	skipped         *prometheus.CounterVec // collection
	resources       *prometheus.GaugeVec   // collection
	buildDuration   *prometheus.HistogramVec
	sendDuration    *prometheus.HistogramVec
	pushLatency     *prometheus.HistogramVec
	ackDuration     *prometheus.HistogramVec // collection
	changeToSend    *prometheus.HistogramVec // collection
	coalesced       *prometheus.CounterVec   // collection
	digestWait      *prometheus.HistogramVec // outcome
	copies          prometheus.Counter
	limitRejections *prometheus.CounterVec // limit
	// mcp.fillIstiodBuffer
	istiodFilled     prometheus.Counter
	istiodFillers    prometheus.Counter
	istiodFillerAcks prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger, clients prometheus.Collector) *metrics {
	durations := prometheus.ExponentialBuckets(0.0005, 2.5, 12) // 0.5 ms .. ~7 min
	m := &metrics{
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mcp_bridge_mcp_clients",
			Help: "Open MCP streams, by protocol (sotw, delta)."}, []string{"protocol"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_responses_total",
			Help: "Responses (pushes) sent to clients, by collection and protocol."}, []string{"collection", "protocol"}),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_sent_bytes_total",
			Help: "Bytes of responses sent to clients, by collection and protocol."}, []string{"collection", "protocol"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_nacks_total",
			Help: "Responses a client rejected (request with error_detail), by collection."}, []string{"collection"}),
		marshalled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_resources_marshalled_total",
			Help: "Resources marshalled into MCP envelopes; an unchanged (name, version) is never re-marshalled."}, []string{"collection"}),
		marshalledBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_marshalled_bytes_total",
			Help: "Bytes of resources marshalled into MCP envelopes."}, []string{"collection"}),
		builtBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_response_bytes_built_total",
			Help: "Bytes of state-of-the-world response bodies assembled (once per collection version, shared by all clients)."}, []string{"collection"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_resources_skipped_total",
			Help: "Resources given to Set and not served (no name, no body, duplicate, unmarshallable); see the log."}, []string{"collection"}),
		resources: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mcp_bridge_mcp_resources",
			Help: "Resources currently served, by collection."}, []string{"collection"}),
		buildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_mcp_build_duration_seconds",
			Help: "Time Set spent building a collection's new snapshot (marshalling changed resources, hashing, assembling the response).", Buckets: durations}, []string{"collection"}),
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_mcp_send_duration_seconds",
			Help: "Time one response took to hand to one stream (long under flow control: a slow client).", Buckets: durations}, []string{"protocol"}),
		pushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_mcp_push_latency_seconds",
			Help: "Time from Set to a response carrying that collection version being sent to a client.", Buckets: durations}, []string{"collection"}),
		ackDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_mcp_ack_duration_seconds",
			Help: "Time from a response being sent to the client's reply (ACK or NACK) to it, by collection.", Buckets: durations}, []string{"collection"}),
		changeToSend: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_change_to_send_seconds",
			Help:    "Time from a registry change reaching the bridge (an adapter calling its sink) to a response carrying it being written to a client stream, by collection: the bridge's own share of a change's latency, pacing waits included.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 18)}, []string{"collection"}), // 0.25 ms .. 33 s
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_pushes_coalesced_total",
			Help: "Collection versions a stream never pushed because a newer one replaced them while it waited (ACK or digest pacing), by collection."}, []string{"collection"}),
		digestWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mcp_bridge_mcp_digest_wait_seconds",
			Help:    "Time a stream waited after an ACK for Istiod's digest signal (mcp.pacing), by outcome: digested, timeout (mcp.pacing.maxWait), unavailable (fell back to ACK pacing).",
			Buckets: durations}, []string{"outcome"}),
		copies: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcp_bridge_mcp_response_copies_total",
			Help: "Responses copied per client because the grpc.Server was built without mcp.ServerOptions()."}),
		limitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcp_bridge_mcp_limit_rejections_total",
			Help: "Streams and requests refused because a client went over one of mcp.limits, by limit."}, []string{"limit"}),
		istiodFilled: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcp_bridge_mcp_istiod_filled_streams_total",
			Help: "Streams recognised as Istiod's config-source client and sent empty MeshConfig responses first (mcp.fillIstiodBuffer)."}),
		istiodFillers: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcp_bridge_mcp_istiod_fillers_total",
			Help: "Empty MeshConfig responses sent to Istiod before its first real response, to fill the channel in which it keeps its first 100 responses (mcp.fillIstiodBuffer). Not counted in mcp_bridge_mcp_responses_total."}),
		istiodFillerAcks: prometheus.NewCounter(prometheus.CounterOpts{Name: "mcp_bridge_mcp_istiod_filler_acks_total",
			Help: "Istiod's replies to those empty responses, swallowed: no subscription, ACK or pacing event."}),
	}
	m.clients = register(reg, log, m.clients)
	m.responses = register(reg, log, m.responses)
	m.sentBytes = register(reg, log, m.sentBytes)
	m.nacks = register(reg, log, m.nacks)
	m.marshalled = register(reg, log, m.marshalled)
	m.marshalledBytes = register(reg, log, m.marshalledBytes)
	m.builtBytes = register(reg, log, m.builtBytes)
	m.skipped = register(reg, log, m.skipped)
	m.resources = register(reg, log, m.resources)
	m.buildDuration = register(reg, log, m.buildDuration)
	m.sendDuration = register(reg, log, m.sendDuration)
	m.pushLatency = register(reg, log, m.pushLatency)
	m.ackDuration = register(reg, log, m.ackDuration)
	m.changeToSend = register(reg, log, m.changeToSend)
	m.coalesced = register(reg, log, m.coalesced)
	m.digestWait = register(reg, log, m.digestWait)
	m.copies = register(reg, log, m.copies)
	m.limitRejections = register(reg, log, m.limitRejections)
	m.istiodFilled = register(reg, log, m.istiodFilled)
	m.istiodFillers = register(reg, log, m.istiodFillers)
	m.istiodFillerAcks = register(reg, log, m.istiodFillerAcks)
	register(reg, log, clients)
	return m
}

// register registers c, or returns the collector already registered under the same name (two
// Servers on one registry without Options.Name then share counters rather than panic).
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("mcp: metric not registered; give each Server its own Options.Name", "err", err)
	return c
}

// clientCollector reports per-client state at scrape time, so nothing is left behind when a
// client disconnects.
type clientCollector struct{ s *Server }

var (
	clientConnectedDesc = prometheus.NewDesc("mcp_bridge_mcp_client_connected_timestamp_seconds",
		"When the client's stream opened.", []string{"client", "node_id", "protocol"}, nil)
	clientSyncedDesc = prometheus.NewDesc("mcp_bridge_mcp_client_synced",
		"1 if the client has ACKed the current version of the type's collection.", []string{"client", "node_id", "type_url"}, nil)
	clientNackedDesc = prometheus.NewDesc("mcp_bridge_mcp_client_nacked",
		"1 if the client's last reply for the type was a NACK.", []string{"client", "node_id", "type_url"}, nil)
	clientAckDesc = prometheus.NewDesc("mcp_bridge_mcp_client_last_ack_timestamp_seconds",
		"When the client last ACKed the type.", []string{"client", "node_id", "type_url"}, nil)
	// The ACK lag is per stream, like the series above: its labels are as bounded as theirs
	// (Limits.MaxStreams streams, Limits.MaxTypesPerStream types each, client-chosen strings
	// truncated), and the series goes with the stream since it is made at scrape time.
	clientAckLagDesc = prometheus.NewDesc("mcp_bridge_mcp_client_ack_lag_seconds",
		"How long the client has been behind the current version of the type's collection (not ACKed it); 0 when in sync.",
		[]string{"client", "node_id", "type_url"}, nil)
	clientCoalescedDesc = prometheus.NewDesc("mcp_bridge_mcp_client_pushes_coalesced",
		"Versions of the type's collection the stream never pushed because a newer one replaced them while it waited.",
		[]string{"client", "node_id", "type_url"}, nil)
	clientChangeToSendDesc = prometheus.NewDesc("mcp_bridge_mcp_client_last_change_to_send_seconds",
		"For the stream's last push of the type, the time from the oldest registry change it carried to the response being written.",
		[]string{"client", "node_id", "type_url"}, nil)
	clientDigestWaitDesc = prometheus.NewDesc("mcp_bridge_mcp_client_digest_wait_seconds",
		"Time the stream has spent waiting for Istiod's digest signal (mcp.pacing), in all.", []string{"client", "node_id"}, nil)
	clientWaitingDesc = prometheus.NewDesc("mcp_bridge_mcp_client_waiting_for_digest",
		"1 while the stream waits for Istiod's digest signal before pushing a newer version.", []string{"client", "node_id"}, nil)
)

func (c clientCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientConnectedDesc
	ch <- clientSyncedDesc
	ch <- clientNackedDesc
	ch <- clientAckDesc
	ch <- clientAckLagDesc
	ch <- clientCoalescedDesc
	ch <- clientChangeToSendDesc
	ch <- clientDigestWaitDesc
	ch <- clientWaitingDesc
}

func (c clientCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, cl := range c.s.Clients() {
		ch <- prometheus.MustNewConstMetric(clientConnectedDesc, prometheus.GaugeValue,
			float64(cl.ConnectedSince.UnixMilli())/1e3, cl.ID, cl.NodeID, cl.Protocol)
		ch <- prometheus.MustNewConstMetric(clientDigestWaitDesc, prometheus.CounterValue, cl.Pacing.TotalWaitSeconds, cl.ID, cl.NodeID)
		ch <- prometheus.MustNewConstMetric(clientWaitingDesc, prometheus.GaugeValue, b2f(cl.Pacing.WaitingForDigest), cl.ID, cl.NodeID)
		for _, t := range cl.Types {
			ch <- prometheus.MustNewConstMetric(clientCoalescedDesc, prometheus.CounterValue, float64(t.PushesCoalesced), cl.ID, cl.NodeID, t.TypeURL)
			if t.LastChangeToSendSeconds > 0 {
				ch <- prometheus.MustNewConstMetric(clientChangeToSendDesc, prometheus.GaugeValue, t.LastChangeToSendSeconds, cl.ID, cl.NodeID, t.TypeURL)
			}
			ch <- prometheus.MustNewConstMetric(clientSyncedDesc, prometheus.GaugeValue, b2f(t.Synced), cl.ID, cl.NodeID, t.TypeURL)
			ch <- prometheus.MustNewConstMetric(clientNackedDesc, prometheus.GaugeValue, b2f(t.Nacked), cl.ID, cl.NodeID, t.TypeURL)
			if !t.AckedAt.IsZero() {
				ch <- prometheus.MustNewConstMetric(clientAckDesc, prometheus.GaugeValue,
					float64(t.AckedAt.UnixMilli())/1e3, cl.ID, cl.NodeID, t.TypeURL)
			}
			if t.CurrentVersion != "" {
				lag := 0.0
				if !t.BehindSince.IsZero() {
					lag = max(now.Sub(t.BehindSince).Seconds(), 0)
				}
				ch <- prometheus.MustNewConstMetric(clientAckLagDesc, prometheus.GaugeValue, lag, cl.ID, cl.NodeID, t.TypeURL)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
