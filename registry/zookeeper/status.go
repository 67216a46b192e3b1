package zookeeper

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds on what the status page lists, so a large estate does not make it megabytes.
const (
	maxStatusConfigurators = 200
	maxStatusRouters       = 200
	maxStatusConsumers     = 500
)

type status struct {
	connected          bool
	sessionID          int64
	sessionSince       time.Time
	sessionExpirations int
	reconnects         int
	lastFullSync       time.Time
	lastFullSyncTook   time.Duration
	lastFullSyncReads  int64
	watched            int
	services           int
	interfaces         int
	applications       int
	rejected           int
	parseFailures      map[string]*failureStat
	consumers          map[string][]string
	configurators      []configuratorStatus
	routers            []routerStatus
	ruleNodes          int // governance rule znodes watched (the rules themselves: merge's status)
}

type failureStat struct {
	Count  int    `json:"count" yaml:"count"`
	Sample string `json:"sample" yaml:"sample"`
}

// configuratorStatus is one configurator URL of an interface and how many provider instances it
// changed. AppliedTo 0 with a Note says why it applies to none.
type configuratorStatus struct {
	Interface    string `json:"interface" yaml:"interface"`
	Configurator string `json:"configurator" yaml:"configurator"`
	AppliedTo    int    `json:"appliedTo" yaml:"appliedTo"`
	Note         string `json:"note,omitempty" yaml:"note,omitempty"`
}

// routerStatus is a router URL found under an interface; routers steer consumers and are not
// applied to instances (the rules engine may read them).
type routerStatus struct {
	Interface string `json:"interface" yaml:"interface"`
	Router    string `json:"router" yaml:"router"`
}

type metrics struct {
	readsTotal  atomic.Int64
	failures    *prometheus.CounterVec
	expirations prometheus.Counter
	reconnects  prometheus.Counter
	lastSync    prometheus.Gauge
	syncTook    prometheus.Gauge
	syncReads   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, a *Adapter) *metrics {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_zookeeper_parse_failures_total",
			Help: "Znodes the adapter could not use, by reason (see /debug/registries for a sample path).",
		}, []string{"reason"}),
		expirations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_zookeeper_session_expirations_total",
			Help: "ZooKeeper sessions lost and replaced (each forces a full resync).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcp_bridge_zookeeper_reconnects_total",
			Help: "Reconnections to ZooKeeper within the same session.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_zookeeper_last_full_sync_timestamp_seconds",
			Help: "Unix time the last full read of the tree finished.",
		}),
		syncTook: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_zookeeper_last_full_sync_duration_seconds",
			Help: "How long the last full read of the tree took.",
		}),
		syncReads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_zookeeper_last_full_sync_reads",
			Help: "Znode reads the last full read of the tree took.",
		}),
	}
	gauge := func(name, help string, f func(s *status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return f(&a.st)
		})
	}
	reg.MustRegister(m.failures, m.expirations, m.reconnects, m.lastSync, m.syncTook, m.syncReads,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mcp_bridge_zookeeper_znode_reads_total",
			Help: "Znode reads (children lists, data, exists) sent to ZooKeeper.",
		}, func() float64 { return float64(m.readsTotal.Load()) }),
		gauge("mcp_bridge_zookeeper_connected", "1 while the adapter holds a ZooKeeper session.", func(s *status) float64 {
			if s.connected {
				return 1
			}
			return 0
		}),
		gauge("mcp_bridge_zookeeper_session_age_seconds", "Age of the current ZooKeeper session.", func(s *status) float64 {
			if s.sessionSince.IsZero() {
				return 0
			}
			return time.Since(s.sessionSince).Seconds()
		}),
		gauge("mcp_bridge_zookeeper_znodes_watched", "Znodes the adapter holds a watch on.", func(s *status) float64 { return float64(s.watched) }),
		gauge("mcp_bridge_zookeeper_services", "Services the adapter reports.", func(s *status) float64 { return float64(s.services) }),
	)
	return m
}

func (a *Adapter) sessionEstablished(id int64, replaced bool) {
	if replaced {
		a.m.expirations.Inc()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.connected, a.st.sessionID, a.st.sessionSince = true, id, time.Now()
	if replaced {
		a.st.sessionExpirations++
	}
}

func (a *Adapter) reconnected() {
	a.m.reconnects.Inc()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.connected = true
	a.st.reconnects++
}

func (a *Adapter) setConnected(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.connected = on
}

func (a *Adapter) recordFullSync(took time.Duration, reads int64) {
	now := time.Now()
	a.m.lastSync.Set(float64(now.UnixNano()) / 1e9)
	a.m.syncTook.Set(took.Seconds())
	a.m.syncReads.Set(float64(reads))
	a.log.Info("full sync of the ZooKeeper tree done", "took", took.Round(time.Millisecond), "reads", reads)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.lastFullSync, a.st.lastFullSyncTook, a.st.lastFullSyncReads = now, took, reads
}

func (a *Adapter) countFailure(reason, where string) {
	a.m.failures.WithLabelValues(reason).Inc()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.st.parseFailures[reason]
	if f == nil {
		f = &failureStat{}
		a.st.parseFailures[reason] = f
	}
	f.Count++
	f.Sample = where
}

// Describe reports the adapter's state for /debug/registries. It never includes credentials:
// the digest is shown by where it comes from.
func (a *Adapter) Describe() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.st
	out := map[string]any{
		"servers":            a.servers,
		"connected":          s.connected,
		"sessionExpirations": s.sessionExpirations,
		"reconnects":         s.reconnects,
		"znodesWatched":      s.watched,
		"znodeReads":         a.m.readsTotal.Load(),
		"services":           s.services,
		"interfaces":         s.interfaces,
		"applications":       s.applications,
		"rejectedNow":        s.rejected,
		"dubboRoots":         a.cfg.DubboRoots,
		"servicesRoot":       a.cfg.ServicesRoot,
		"mappingRoot":        a.cfg.MappingRoot,
		"governanceRoot":     a.cfg.GovernanceRoot,
		"dubbo3Hosts":        a.cfg.Dubbo3Hosts,
	}
	if c := a.dialer.Load(); c != nil {
		// Dials failed in a row: how far the reconnect backoff has grown.
		out["failedDials"] = c.consecutiveFailures()
	}
	if a.chroot != "" {
		out["chroot"] = a.chroot
	}
	if !a.cfg.Digest.IsZero() {
		out["digest"] = a.cfg.Digest.String()
	}
	if s.sessionID != 0 {
		out["sessionId"] = fmt.Sprintf("0x%x", s.sessionID)
		out["sessionAge"] = time.Since(s.sessionSince).Round(time.Second).String()
	}
	if !s.lastFullSync.IsZero() {
		out["lastFullSync"] = s.lastFullSync.UTC().Format(time.RFC3339)
		out["lastFullSyncDuration"] = s.lastFullSyncTook.Round(time.Millisecond).String()
		out["lastFullSyncReads"] = s.lastFullSyncReads
	}
	failures := make(map[string]failureStat, len(s.parseFailures))
	for r, f := range s.parseFailures {
		failures[r] = *f
	}
	out["parseFailures"] = failures
	out["configurators"] = capList(s.configurators, maxStatusConfigurators)
	out["routers"] = capList(s.routers, maxStatusRouters)
	out["governanceRuleNodes"] = s.ruleNodes
	consumers := s.consumers
	if len(consumers) > maxStatusConsumers {
		names := make([]string, 0, len(consumers))
		for c := range consumers {
			names = append(names, c)
		}
		sort.Strings(names)
		consumers = make(map[string][]string, maxStatusConsumers)
		for _, c := range names[:maxStatusConsumers] {
			consumers[c] = s.consumers[c]
		}
		out["consumersTruncated"] = len(s.consumers)
	}
	out["consumers"] = consumers
	return out
}

func capList[T any](l []T, n int) []T {
	if len(l) > n {
		return l[:n]
	}
	return l
}
