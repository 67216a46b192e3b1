// Package xdsview connects to Istiod as an Envoy sidecar would and keeps what Istiod generated
// for it (clusters, endpoints, listeners, routes), so end-to-end tests can assert on Istiod's
// output and time when a change became visible there.
package xdsview

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type is an xDS resource type URL.
type Type string

// The four types a sidecar subscribes to.
const (
	CDS Type = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EDS Type = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	LDS Type = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RDS Type = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// DefaultNodeID is a sidecar in namespace default. Istiod needs the four parts: type, IP, id,
// DNS domain.
const DefaultNodeID = "sidecar~10.0.0.1~client.default~default.svc.cluster.local"

// Options configures a View.
type Options struct {
	// NodeID defaults to DefaultNodeID.
	NodeID string
	// Metadata is merged over the default node metadata (NAMESPACE default, ISTIO_VERSION,
	// CLUSTER_ID Kubernetes, ...). Keys and value shapes are Istio's NodeMetadata JSON
	// (pkg/model/proxy.go): strings, string maps such as LABELS, lists such as INSTANCE_IPS.
	Metadata map[string]any
	// Locality is the node's locality, "region/zone/subzone" (trailing parts may be left out):
	// Istiod orders EDS locality groups into priorities relative to it when a DestinationRule
	// enables locality load balancing. Empty: none (every group priority 0).
	Locality string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Endpoint is one endpoint of a cluster as Istiod sent it.
type Endpoint struct {
	// Address is ip:port.
	Address string
	// Weight is the endpoint's load_balancing_weight (0 when unset).
	Weight uint32
	// Health is Envoy's health status name (UNKNOWN, HEALTHY, UNHEALTHY, ...).
	Health string
	// Locality is region/zone/subzone.
	Locality string
	// Priority is the locality group's priority (0 = most preferred).
	Priority uint32
}

// Snapshot is a copy of a View's state. Its maps are the caller's; the protos in them are shared
// and must not be modified.
type Snapshot struct {
	Clusters  map[string]*clusterv3.Cluster
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	// Endpoints holds, per EDS cluster name, the endpoints sorted by address. Non-EDS clusters
	// with an inline load assignment (STRICT_DNS, STATIC) are listed too.
	Endpoints map[string][]Endpoint
	// Changed holds, per type and resource name, when the response that last changed (added,
	// modified or removed) that resource arrived: the moment a change became visible.
	Changed map[Type]map[string]time.Time
	// Updated is when the last response was applied.
	Updated time.Time
}

// TypeStats counts what Istiod sent of one type.
type TypeStats struct {
	Responses int
	Resources int
	Bytes     int64
}

// View is a live sidecar connection to Istiod. It reconnects when the stream breaks, keeping the
// last state meanwhile, as Envoy does.
type View struct {
	addr   string
	node   *corev3.Node
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	conn   *grpc.ClientConn

	mu        sync.Mutex
	state     Snapshot
	edsNames  []string // clusters subscribed over EDS
	rdsNames  []string // route configurations subscribed over RDS
	stats     map[Type]TypeStats
	connected bool
	lastErr   error
	changed   chan struct{} // closed and replaced on every applied response
}

// New connects to Istiod's plaintext xDS address and subscribes to CDS and LDS, then to EDS and
// RDS for what those name. Close it when done.
func New(addr string, opts Options) (*View, error) {
	if opts.NodeID == "" {
		opts.NodeID = DefaultNodeID
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	md := map[string]any{
		"NAMESPACE":         "default",
		"ISTIO_VERSION":     "1.31.0",
		"CLUSTER_ID":        "Kubernetes",
		"INTERCEPTION_MODE": "REDIRECT",
		"WORKLOAD_NAME":     "client",
		"LABELS":            map[string]any{"app": "client"},
	}
	maps.Copy(md, opts.Metadata)
	meta, err := structpb.NewStruct(md)
	if err != nil {
		return nil, fmt.Errorf("xdsview: node metadata: %w", err)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Istiod's first EDS answer is 4.9 MB at 2,000 services; grpc-go's default 4 MiB receive
		// limit would fail every receive and reconnect for ever.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		// gRPC's default reconnect backoff starts at 1 s and grows to 2 min; a restarted Istiod is
		// back in well under a second, and the test waits for it.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.5, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("xdsview: dialing %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &View{
		addr:   addr,
		node:   &corev3.Node{Id: opts.NodeID, Metadata: meta, Locality: NodeLocality(opts.Locality)},
		log:    opts.Logger,
		cancel: cancel,
		done:   make(chan struct{}),
		conn:   conn,
		state: Snapshot{
			Clusters:  map[string]*clusterv3.Cluster{},
			Listeners: map[string]*listenerv3.Listener{},
			Routes:    map[string]*routev3.RouteConfiguration{},
			Endpoints: map[string][]Endpoint{},
			Changed:   map[Type]map[string]time.Time{CDS: {}, EDS: {}, LDS: {}, RDS: {}},
		},
		stats:   map[Type]TypeStats{},
		changed: make(chan struct{}),
	}
	go v.run(ctx)
	return v, nil
}

// NodeLocality parses "region/zone/subzone" (trailing parts optional) into an xDS node locality,
// nil for "".
func NodeLocality(s string) *corev3.Locality {
	if s == "" {
		return nil
	}
	parts := append(strings.SplitN(s, "/", 3), "", "")
	return &corev3.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
}

// Close ends the stream and waits for the View's goroutine.
func (v *View) Close() {
	v.cancel()
	<-v.done
	v.conn.Close()
}

// Snapshot returns a copy of the current state.
func (v *View) Snapshot() *Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snapshotLocked()
}

func (v *View) snapshotLocked() *Snapshot {
	s := &Snapshot{
		Clusters:  maps.Clone(v.state.Clusters),
		Listeners: maps.Clone(v.state.Listeners),
		Routes:    maps.Clone(v.state.Routes),
		Endpoints: make(map[string][]Endpoint, len(v.state.Endpoints)),
		Changed:   make(map[Type]map[string]time.Time, len(v.state.Changed)),
		Updated:   v.state.Updated,
	}
	for k, eps := range v.state.Endpoints {
		s.Endpoints[k] = slices.Clone(eps)
	}
	for k, m := range v.state.Changed {
		s.Changed[k] = maps.Clone(m)
	}
	return s
}

// Stats returns, per type, what Istiod has sent so far.
func (v *View) Stats() map[Type]TypeStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return maps.Clone(v.stats)
}

// Connected reports whether the stream is up, and the last stream error if it is not.
func (v *View) Connected() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.connected, v.lastErr
}

// Wait blocks until cond accepts the state or ctx ends, re-checking after every response from
// Istiod, and returns a copy of the state cond accepted. cond returns nil when satisfied, else
// why not; on timeout Wait returns ctx's error joined with cond's last answer.
//
// cond runs with the View locked, on the live state rather than a copy, so that waiting on a
// large configuration costs no copying per response: it must only read the snapshot, not keep
// it, and not call the View's methods.
func (v *View) Wait(ctx context.Context, cond func(*Snapshot) error) (*Snapshot, error) {
	var out *Snapshot
	err := v.wait(ctx, func(s *Snapshot) error {
		if err := cond(s); err != nil {
			return err
		}
		out = v.snapshotLocked()
		return nil
	})
	return out, err
}

func (v *View) wait(ctx context.Context, cond func(*Snapshot) error) error {
	for {
		v.mu.Lock()
		ch := v.changed
		err := cond(&v.state)
		v.mu.Unlock()
		if err == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			connected, lastErr := v.Connected()
			if !connected && lastErr != nil {
				return fmt.Errorf("%w: %w (stream to %s down: %v)", ctx.Err(), err, v.addr, lastErr)
			}
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
}
