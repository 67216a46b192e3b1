package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// testServer is a Server behind a real gRPC server on a 127.0.0.1 port.
type testServer struct {
	*Server
	addr string
	g    *grpc.Server
	reg  *prometheus.Registry
}

// startServer starts a Server. grpcOpts nil means ServerOptions(); pass an empty, non-nil slice
// for grpc-go's defaults.
func startServer(t testing.TB, opts Options, grpcOpts []grpc.ServerOption) *testServer {
	t.Helper()
	if grpcOpts == nil {
		grpcOpts = ServerOptions()
	}
	reg := prometheus.NewRegistry()
	if opts.Metrics == nil {
		opts.Metrics = reg
	}
	if opts.Pacing.Mode == "" {
		// Tests written for ACK pacing; digest pacing has its own tests (pacing_test.go) with a
		// metrics endpoint they control, rather than whatever may listen on 127.0.0.1:15014.
		opts.Pacing.Mode = PacingAck
	}
	s := NewServer(opts)
	g := grpc.NewServer(grpcOpts...)
	s.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = g.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			g.Stop()
		}
	})
	return &testServer{Server: s, addr: l.Addr().String(), g: g, reg: reg}
}

// dial opens a client connection; extra options come after the defaults.
func dial(t testing.TB, addr string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	}, extra...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Istiod's identity as its MCP client (pkg/adsc, used by pilot/pkg/bootstrap/configcontroller.go)
// sends it: node id "sidecar~<pod IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local",
// metadata from model.NodeMetadata{Generator: "api", IstioRevision: REVISION}.ToStruct() (the
// revision is omitted when empty, the default) plus ISTIO_VERSION "65536.65536.65536", which adsc
// adds when absent.
const istiodNodeID = "sidecar~10.244.0.7~istiod-6d8f9c7b5-x2k4p.istio-system~istio-system.svc.cluster.local"

func istiodNode() *core.Node {
	return &core.Node{Id: istiodNodeID, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"GENERATOR":     structpb.NewStringValue("api"),
		"ISTIO_VERSION": structpb.NewStringValue("65536.65536.65536"),
	}}}
}

// adsc behaves like Istiod's MCP client: one ADS stream; the initial requests for every type go
// out at once, each with a garbage response_nonce (adsc sets time.Now().String()) and only the
// first with the node; every response is ACKed with its nonce and version and the node; resources
// are decoded the way Istiod decodes them (UnmarshalTo istio.mcp.v1alpha1.Resource, metadata.name
// "<ns>/<name>", body UnmarshalNew) and a resource that fails is an error here, where Istiod
// would only log it.
type adsc struct {
	t      testing.TB
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	ack    bool
	decode bool // decode every resource as Istiod does (the default); set before recv starts
	resps  chan *discovery.DiscoveryResponse
	done   chan struct{}

	sendMu sync.Mutex // gRPC forbids concurrent Sends on a stream: ACKs and tests' requests share it

	mu  sync.Mutex
	err error // why the stream ended
	// Fillers (empty MeshConfig responses before the first real one, mcp.fillIstiodBuffer) are
	// ACKed like any response, as Istiod does, but not applied nor handed to next: counted here.
	fillers     int
	fillersLate int                                     // fillers received after a real response
	real        int                                     // real responses received
	last        map[string]*discovery.DiscoveryResponse // by type URL
	state       map[string]map[string]*mcpapi.Resource  // by type URL, then "<ns>/<name>"
}

type adscOptions struct {
	keepalive time.Duration // client keepalive pings (Istiod: 30 s); 0 = none
	noAck     bool
	node      *core.Node // sent on the first request; nil: istiodNode()
}

func startAdsc(t testing.TB, addr string, typeURLs []string, o adscOptions) *adsc {
	t.Helper()
	// Istiod's dial options: 1 MiB windows, unlimited receive size, its keepalive.
	dopts := []grpc.DialOption{
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(1 << 20),
	}
	if o.keepalive > 0 {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.keepalive, Timeout: 10 * time.Second}))
	}
	cc := dial(t, addr, dopts...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open ADS stream: %v", err)
	}
	a := newAdsc(t, stream, !o.noAck)
	for i, u := range typeURLs {
		req := &discovery.DiscoveryRequest{TypeUrl: u, ResponseNonce: time.Now().String()}
		if i == 0 {
			req.Node = o.node
			if req.Node == nil {
				req.Node = istiodNode()
			}
		}
		if err := stream.Send(req); err != nil {
			t.Fatalf("send initial request for %s: %v", u, err)
		}
	}
	go a.recv()
	return a
}

// newAdsc wraps an open stream; call go a.recv() to start reading.
func newAdsc(t testing.TB, stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, ack bool) *adsc {
	return &adsc{t: t, stream: stream, ack: ack, decode: true, resps: make(chan *discovery.DiscoveryResponse, 1000),
		done: make(chan struct{}), last: map[string]*discovery.DiscoveryResponse{},
		state: map[string]map[string]*mcpapi.Resource{}}
}

// send sends a request on the client's stream.
func (a *adsc) send(req *discovery.DiscoveryRequest) {
	a.t.Helper()
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if err := a.stream.Send(req); err != nil {
		a.t.Fatalf("send %s: %v", req.GetTypeUrl(), err)
	}
}

func (a *adsc) recv() {
	defer close(a.done)
	for {
		resp, err := a.stream.Recv()
		filler := err == nil && a.filler(resp)
		if err == nil && !filler {
			err = a.apply(resp)
		}
		if err != nil {
			a.mu.Lock()
			a.err = err
			a.mu.Unlock()
			return
		}
		if !filler {
			a.resps <- resp
		}
		if a.ack {
			a.sendMu.Lock()
			err := a.stream.Send(&discovery.DiscoveryRequest{ResponseNonce: resp.GetNonce(), TypeUrl: resp.GetTypeUrl(),
				Node: istiodNode(), VersionInfo: resp.GetVersionInfo()})
			a.sendMu.Unlock()
			if err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
				return
			}
		}
	}
}

// filler reports whether resp is a filler, and counts it and every real response.
func (a *adsc) filler(resp *discovery.DiscoveryResponse) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if resp.GetTypeUrl() != istio.MeshConfigTypeURL || !strings.HasPrefix(resp.GetNonce(), fillNoncePrefix) {
		a.real++
		return false
	}
	a.fillers++
	if a.real > 0 {
		a.fillersLate++
	}
	return true
}

// fillCounts returns the fillers received, those after a real response, and real responses.
func (a *adsc) fillCounts() (fillers, late, real int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fillers, a.fillersLate, a.real
}

func (a *adsc) apply(resp *discovery.DiscoveryResponse) error {
	got := map[string]*mcpapi.Resource{}
	if resp.GetTypeUrl() != istio.MeshConfigTypeURL && a.decode {
		for _, r := range resp.GetResources() {
			env := &mcpapi.Resource{}
			if err := r.UnmarshalTo(env); err != nil {
				return fmt.Errorf("type %s: resource is not an MCP envelope: %w", resp.GetTypeUrl(), err)
			}
			if parts := strings.Split(env.GetMetadata().GetName(), "/"); len(parts) != 2 {
				return fmt.Errorf("type %s: metadata.name %q is not <ns>/<name>", resp.GetTypeUrl(), env.GetMetadata().GetName())
			}
			if _, err := env.GetBody().UnmarshalNew(); err != nil {
				return fmt.Errorf("type %s: body of %s: %w", resp.GetTypeUrl(), env.GetMetadata().GetName(), err)
			}
			got[env.GetMetadata().GetName()] = env
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[resp.GetTypeUrl()] = resp
	a.state[resp.GetTypeUrl()] = got
	return nil
}

// next returns the next response, failing the test after timeout.
func (a *adsc) next(timeout time.Duration) *discovery.DiscoveryResponse {
	a.t.Helper()
	select {
	case r := <-a.resps:
		return r
	case <-a.done:
		a.t.Fatalf("stream ended: %v", a.streamErr())
	case <-time.After(timeout):
		a.t.Fatalf("no response within %v", timeout)
	}
	return nil
}

// nextFor skips responses until one for typeURL arrives.
func (a *adsc) nextFor(typeURL string, timeout time.Duration) *discovery.DiscoveryResponse {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := a.next(time.Until(deadline))
		if r.GetTypeUrl() == typeURL {
			return r
		}
	}
}

// expectNone fails if a response arrives within d.
func (a *adsc) expectNone(d time.Duration) {
	a.t.Helper()
	select {
	case r := <-a.resps:
		a.t.Fatalf("unexpected response for %s version %s with %d resources", r.GetTypeUrl(), r.GetVersionInfo(), len(r.GetResources()))
	case <-a.done:
		a.t.Fatalf("stream ended: %v", a.streamErr())
	case <-time.After(d):
	}
}

func (a *adsc) streamErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// names returns the "<ns>/<name>" of every resource last received for typeURL, sorted.
func (a *adsc) names(typeURL string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for n := range a.state[typeURL] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// serviceEntry builds a ServiceEntry resource with n inline endpoints; gen varies its content.
func serviceEntry(ns, name string, n, gen int) *Resource {
	se := &networking.ServiceEntry{
		Hosts:      []string{fmt.Sprintf("%s.%s.nacos", name, ns)},
		Addresses:  []string{fmt.Sprintf("240.240.%d.%d", (len(name)*7)%250, gen%250)},
		Ports:      []*networking.ServicePort{{Number: 20880, Protocol: "TCP", Name: "tcp-dubbo"}},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	for i := 0; i < n; i++ {
		se.Endpoints = append(se.Endpoints, &networking.WorkloadEntry{
			Address:  fmt.Sprintf("10.%d.%d.%d", (i/65536)%256, (i/256)%256, i%256),
			Ports:    map[string]uint32{"tcp-dubbo": 20880},
			Labels:   map[string]string{"app": name, "version": "v1", "gen": fmt.Sprint(gen)},
			Locality: "cn-hangzhou/cn-hangzhou-h",
			Weight:   100,
		})
	}
	return resourceOf(ns, name, se, map[string]string{"registry": "nacos"})
}

// workloadEntry builds a WorkloadEntry resource; gen varies its content.
func workloadEntry(ns, name string, i, gen int) *Resource {
	we := &networking.WorkloadEntry{
		Address:  fmt.Sprintf("10.%d.%d.%d", (i/65536)%256, (i/256)%256, i%256),
		Ports:    map[string]uint32{"tcp-dubbo": 20880},
		Labels:   map[string]string{"app": name, "version": "v1", "gen": fmt.Sprint(gen)},
		Locality: "cn-hangzhou/cn-hangzhou-h",
		Weight:   100,
	}
	return resourceOf(ns, name, we, map[string]string{"registry": "nacos"})
}

// resourceOf wraps a spec the way the bridge does: deterministic body, Version = content hash.
func resourceOf(ns, name string, spec proto.Message, labels map[string]string) *Resource {
	body, err := anypb.New(spec)
	if err != nil {
		panic(err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		panic(err)
	}
	body.Value = raw
	h := sha256.New()
	h.Write(raw)
	for _, k := range []string{"registry"} {
		h.Write([]byte(k + "=" + labels[k]))
	}
	return &Resource{Namespace: ns, Name: name, Labels: labels, Body: body, Version: hex.EncodeToString(h.Sum(nil)[:8])}
}
