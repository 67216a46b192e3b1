// Package mcp serves Istio config to Istiod over MCP-over-xDS: the aggregated discovery service
// (state of the world and Delta) that Istiod's meshConfig.configSources "xds://" client speaks.
//
// The caller hands whole collections to Set; the server keeps them as immutable snapshots, each
// resource marshalled into its istio.mcp.v1alpha1.Resource envelope once per (name, version), and
// each collection's response body encoded once per version and written unchanged to every client
// that asks for the collection under any type URL version. Every stream sends on its own
// goroutine and always sends the latest state, one response per type in flight until the client
// ACKs it, so a slow client neither holds up others nor queues stale versions.
package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// Options configure a Server. The zero value works.
type Options struct {
	// Logger receives the server's logs; default: discarded.
	Logger *slog.Logger
	// Metrics is where the server registers its metrics; default: a private registry.
	Metrics prometheus.Registerer
	// Name, when set, adds the label server=<Name> to every metric, so several Servers (one per
	// MCP listener when sharding) can share one registry.
	Name string
	// AckTimeout is how long a stream waits for the client to ACK or NACK a response before it
	// sends a newer version of that type anyway. Waiting paces pushes to what the client digests
	// (Istiod ACKs after applying a response); the timeout only guards against clients that never
	// reply. Default 30s.
	AckTimeout time.Duration
	// Limits bound what one client can make the server hold; zero fields take their defaults.
	// Pass the same Limits to ServerOptions.
	Limits Limits
	// Pacing says what a stream waits for before it pushes a newer version (mcp.pacing); the
	// zero value waits for Istiod's digest signal, falling back to ACKs.
	Pacing Pacing
	// DisableIstiodFill turns off mcp.fillIstiodBuffer: by default a stream recognised as
	// Istiod's config-source client first gets IstiodHeldResponses empty MeshConfig responses,
	// so Istiod does not keep its first 100 real responses for life (istiodfill.go).
	DisableIstiodFill bool
}

// Server is an MCP-over-xDS server. Create it with NewServer; it holds no global state, so
// several can run in one process.
type Server struct {
	log        *slog.Logger
	m          *metrics
	ackTimeout time.Duration
	limits     Limits
	logs       *logLimiter // rate-limits what clients can make the server log
	pacer      *pacer
	fillIstiod bool // send Istiod streams fillers first (mcp.fillIstiodBuffer)

	setMu sync.Mutex           // serialises Set
	view  atomic.Pointer[view] // nil until the first Set: nothing is answered before it
	empty *snapshot            // answers collections never set
	nonce atomic.Uint64        // response nonces, unique per server
	stop  chan struct{}        // closed by Close
	once  sync.Once            // closes stop
	wg    sync.WaitGroup       // running stream handlers
	mu    sync.Mutex           // guards conns and peers
	conns map[*conn]struct{}
	peers map[string]int // open streams per peer host
	ids   atomic.Uint64  // stream ids
	ads   adsService     // the gRPC service, kept off Server's method set
}

// view is the state of every collection set so far.
type view struct {
	snaps map[string]*snapshot
}

// NewServer creates a Server. It answers nothing until the first Set.
func NewServer(opts Options) *Server {
	s := &Server{
		log:        opts.Logger,
		ackTimeout: opts.AckTimeout,
		limits:     opts.Limits.WithDefaults(),
		pacer:      newPacer(opts.Pacing),
		fillIstiod: !opts.DisableIstiodFill,
		empty:      newEmptySnapshot(""),
		stop:       make(chan struct{}),
		conns:      map[*conn]struct{}{},
		peers:      map[string]int{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ackTimeout <= 0 {
		s.ackTimeout = 30 * time.Second
	}
	s.logs = newLogLimiter(s.log, 10*time.Second)
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if opts.Name != "" {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"server": opts.Name}, reg)
	}
	s.m = newMetrics(reg, s.log, clientCollector{s})
	s.ads = adsService{s}
	return s
}

// Register registers the aggregated discovery service (state of the world and Delta) on g. Build
// g with ServerOptions(limits), the same limits as Options.Limits.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s.ads)
}

// Set atomically replaces the listed collections (others are untouched) and pushes the changes
// to subscribers. Keys are collections, "group/Kind" (a "group/version/Kind" key is accepted and
// stripped of its version). Each slice is the complete new content of its collection; it should
// be sorted by (Namespace, Name), else Set sorts a copy. A nil or empty slice empties the
// collection. Resources without a name or body, and duplicates, are skipped and logged.
//
// The first Set releases every request waiting since start-up; until then clients get nothing,
// so a restarted server never tells a running Istiod that all config is gone.
func (s *Server) Set(state map[string][]*Resource) {
	s.SetAt(state, time.Time{})
}

// SetAt is Set for a state whose oldest change reached the bridge at changedAt (the registry
// event; zero: now). Pushes carrying it are timed from then in mcp_bridge_change_to_send_seconds
// and on /debug/clients: the bridge's own share of a change's latency.
func (s *Server) SetAt(state map[string][]*Resource, changedAt time.Time) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	old := s.view.Load()
	next := &view{snaps: map[string]*snapshot{}}
	if old != nil {
		maps.Copy(next.snaps, old.snaps)
	}
	changed := 0
	for name, rs := range state {
		collection := CollectionOf(name)
		if collection == istio.CollectionMeshConfig {
			s.log.Warn("mcp: MeshConfig cannot be served as MCP resources; ignored", "resources", len(rs))
			continue
		}
		prev := next.snaps[collection]
		if prev == nil {
			prev = s.empty
		}
		start := time.Now()
		snap, st := buildSnapshot(collection, prev, rs)
		s.m.buildDuration.WithLabelValues(collection).Observe(time.Since(start).Seconds())
		s.m.marshalled.WithLabelValues(collection).Add(float64(st.marshalled))
		s.m.marshalledBytes.WithLabelValues(collection).Add(float64(st.marshalledBytes))
		if len(st.skipped) > 0 {
			s.m.skipped.WithLabelValues(collection).Add(float64(len(st.skipped)))
			s.log.Warn("mcp: resources not served", "collection", collection, "count", len(st.skipped),
				"first", strings.Join(st.skipped[:min(len(st.skipped), 5)], "; "))
		}
		if snap == prev {
			continue
		}
		snap.stamp(prev, changedAt)
		s.m.builtBytes.WithLabelValues(collection).Add(float64(st.builtBytes))
		s.m.resources.WithLabelValues(collection).Set(float64(len(snap.entries)))
		next.snaps[collection] = snap
		changed++
		s.log.Debug("mcp: collection updated", "collection", collection, "version", snap.version,
			"resources", len(snap.entries), "changed", len(snap.changed), "removed", len(snap.removed),
			"marshalled", st.marshalled)
	}
	if old != nil && changed == 0 {
		return
	}
	s.view.Store(next)
	if old == nil {
		s.log.Info("mcp: first state set; answering clients", "collections", len(next.snaps))
	}
	s.mu.Lock()
	for c := range s.conns {
		c.poke()
	}
	s.mu.Unlock()
}

// Answering reports whether the first Set has been made, so requests are answered (readiness of
// a shard: every shard's server must be answering before the bridge is ready).
func (s *Server) Answering() bool { return s.view.Load() != nil }

// snapshotFor returns the current snapshot of a collection, or nil before the first Set.
func (s *Server) snapshotFor(collection string) *snapshot {
	v := s.view.Load()
	if v == nil {
		return nil
	}
	if snap := v.snaps[collection]; snap != nil {
		return snap
	}
	return s.empty
}

// Close ends every stream cleanly (status OK: clients reconnect elsewhere or later) and refuses
// new ones. It does not wait; see Shutdown. Call it before grpc.Server.GracefulStop, which waits
// for streams and would otherwise wait forever on ADS streams.
func (s *Server) Close() {
	s.once.Do(func() { close(s.stop) })
}

// Shutdown closes the server and waits until every stream handler has returned or ctx is done.
// A handler blocked writing to a client that stopped reading returns only when gRPC cancels its
// stream (grpc.Server.Stop, or the client going away).
func (s *Server) Shutdown(ctx context.Context) error {
	s.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mcp: streams still open at shutdown: %w", ctx.Err())
	}
}

func (s *Server) nextNonce() string {
	return fmt.Sprintf("%x", s.nonce.Add(1))
}

// addConn registers a new stream; it fails once the server is closed or a stream limit is
// reached.
func (s *Server) addConn(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return status.Error(codes.Unavailable, "mcp server is shutting down")
	default:
	}
	host := peerHost(c.peer)
	if len(s.conns) >= s.limits.MaxStreams {
		return s.reject(c, limitStreams, codes.ResourceExhausted, "the server has %d open streams", len(s.conns))
	}
	if s.peers[host] >= s.limits.MaxStreamsPerPeer {
		return s.reject(c, limitStreamsPeer, codes.ResourceExhausted, "peer %s has %d open streams", truncate(host, logFieldBytes), s.peers[host])
	}
	s.conns[c] = struct{}{}
	s.peers[host]++
	s.wg.Add(1)
	s.m.clients.WithLabelValues(c.protocol).Inc()
	return nil
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	host := peerHost(c.peer)
	if s.peers[host]--; s.peers[host] <= 0 {
		delete(s.peers, host)
	}
	s.mu.Unlock()
	s.m.clients.WithLabelValues(c.protocol).Dec()
	s.wg.Done()
}

// reject counts a request or stream refused over a limit, logs it (rate-limited, fields
// truncated) and returns the gRPC status the client gets, which names the limit and its key.
func (s *Server) reject(c *conn, limit string, code codes.Code, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	s.m.limitRejections.WithLabelValues(limit).Inc()
	s.logs.warn("limit:"+limit, "mcp: client over a limit; refused", "limit", limit, "key", limitKey(limit),
		"client", c.id, "peer", truncate(c.peer, logFieldBytes), "node", truncate(c.node(), logFieldBytes), "detail", what)
	return status.Errorf(code, "mcp-bridge limit %s exceeded: %s (configuration key %s)", limit, what, limitKey(limit))
}

// Clients reports every open stream, oldest first (at most Limits.MaxStreams of them).
func (s *Server) Clients() []ClientStatus {
	return s.ClientsPage(0, -1).Clients
}

// ClientPage is one page of /debug/clients.
type ClientPage struct {
	Total   int            `json:"total"` // open streams
	Offset  int            `json:"offset"`
	Limit   int            `json:"limit"`
	Clients []ClientStatus `json:"clients"`
}

// ClientsPage reports the open streams from offset on, oldest first, at most limit of them
// (all when limit < 0). Only the page's streams are inspected.
func (s *Server) ClientsPage(offset, limit int) ClientPage {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	sort.Slice(conns, func(i, j int) bool {
		if !conns[i].connected.Equal(conns[j].connected) {
			return conns[i].connected.Before(conns[j].connected)
		}
		return conns[i].seq < conns[j].seq
	})
	page := ClientPage{Total: len(conns), Offset: offset, Limit: limit, Clients: []ClientStatus{}}
	offset = min(max(offset, 0), len(conns))
	end := len(conns)
	if limit >= 0 {
		end = min(end, offset+limit)
	}
	for _, c := range conns[offset:end] {
		page.Clients = append(page.Clients, c.status())
	}
	return page
}

// metricCollection is the collection label for metrics: never a client-chosen string.
func metricCollection(snap *snapshot) string {
	if snap.collection == "" {
		return unsetCollection
	}
	return snap.collection
}
