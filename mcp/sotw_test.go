package mcp

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

const (
	seV1      = "networking.istio.io/v1/ServiceEntry"
	seV1alpha = "networking.istio.io/v1alpha3/ServiceEntry"
	weV1      = "networking.istio.io/v1/WorkloadEntry"
)

// TestSotwPushes: removals disappear from the next response, unchanged collections and
// unchanged Sets push nothing, and each resource is marshalled once per version however many
// clients and type URL versions read it.
func TestSotwPushes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	marshalled := func() float64 {
		return testutil.ToFloat64(srv.m.marshalled.WithLabelValues(istio.CollectionServiceEntry))
	}
	built := func() float64 {
		return testutil.ToFloat64(srv.m.builtBytes.WithLabelValues(istio.CollectionServiceEntry))
	}
	a, b, c := serviceEntry("default", "a", 2, 0), serviceEntry("default", "b", 2, 0), serviceEntry("default", "c", 2, 0)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {a, b, c}, istio.CollectionWorkloadEntry: {workloadEntry("default", "w", 1, 0)}})

	v1 := startAdsc(t, srv.addr, []string{seV1, weV1}, adscOptions{})
	first := v1.nextFor(seV1, 5*time.Second)
	v1.nextFor(weV1, 5*time.Second)
	if got := v1.names(seV1); !slices.Equal(got, []string{"default/a", "default/b", "default/c"}) {
		t.Fatalf("first response carried %v", got)
	}
	if marshalled() != 3 {
		t.Fatalf("marshalled %v resources for 3", marshalled())
	}

	// b is removed from the registry: gone from the next response; WorkloadEntry is not resent.
	builtBefore := built()
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {a, c}})
	second := v1.next(5 * time.Second)
	if second.GetTypeUrl() != seV1 || second.GetVersionInfo() == first.GetVersionInfo() || second.GetNonce() == first.GetNonce() {
		t.Fatalf("after removal got %s version %s nonce %s (first: version %s nonce %s)", second.GetTypeUrl(),
			second.GetVersionInfo(), second.GetNonce(), first.GetVersionInfo(), first.GetNonce())
	}
	if got := v1.names(seV1); !slices.Equal(got, []string{"default/a", "default/c"}) {
		t.Fatalf("after removing b the response carried %v", got)
	}
	if marshalled() != 3 {
		t.Fatalf("a removal re-marshalled resources: %v marshalled in total, want 3", marshalled())
	}

	// The same content again: nothing marshalled, nothing built, nothing sent.
	builtAfterRemoval := built()
	if builtAfterRemoval <= builtBefore {
		t.Fatalf("no response body built for the removal")
	}
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {a, c}})
	v1.expectNone(200 * time.Millisecond)
	if marshalled() != 3 || built() != builtAfterRemoval {
		t.Fatalf("an unchanged Set marshalled (%v) or built (%v != %v)", marshalled(), built(), builtAfterRemoval)
	}

	// One changed resource: one marshal. A second client on the Istio <=1.23 URL gets the same
	// resources from the same built body.
	a2 := serviceEntry("default", "a", 2, 1)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {a2, c}})
	third := v1.next(5 * time.Second)
	if marshalled() != 4 {
		t.Fatalf("one change marshalled %v resources in total, want 4", marshalled())
	}
	builtNow := built()
	old := startAdsc(t, srv.addr, []string{seV1alpha}, adscOptions{})
	other := old.next(5 * time.Second)
	if other.GetTypeUrl() != seV1alpha || other.GetVersionInfo() != third.GetVersionInfo() {
		t.Fatalf("v1alpha3 client got %s version %s, want %s version %s", other.GetTypeUrl(), other.GetVersionInfo(), seV1alpha, third.GetVersionInfo())
	}
	for i := range third.GetResources() {
		if string(third.GetResources()[i].GetValue()) != string(other.GetResources()[i].GetValue()) {
			t.Fatalf("resource %d differs between the v1 and the v1alpha3 client", i)
		}
	}
	if marshalled() != 4 || built() != builtNow {
		t.Fatalf("a second client cost marshals (%v, want 4) or a rebuild (%v, want %v)", marshalled(), built(), builtNow)
	}
}

// TestRepliesAndNonces: NACKs are recorded; stale and garbage nonces are ignored without error;
// a response waits for the client's reply to the previous one (unless AckTimeout passes); a
// request with an empty nonce is answered afresh with a new nonce.
func TestRepliesAndNonces(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	c := startAdsc(t, srv.addr, []string{seV1}, adscOptions{noAck: true})
	r1 := c.next(5 * time.Second)

	// A garbage nonce: ignored, stream stays open.
	c.send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: "2026-01-02 03:04:05 +0000 UTC m=+0.1", VersionInfo: "x"})
	c.expectNone(200 * time.Millisecond)

	// r1 is unanswered: a new version waits for the reply.
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 1)}})
	c.expectNone(300 * time.Millisecond)
	if cl := srv.Clients()[0].Types[0]; !cl.WaitingForAck || cl.Synced {
		t.Fatalf("status while r1 is unanswered = %+v, want waitingForAck and not synced", cl)
	}

	// NACK r1: recorded, and the newer version goes out.
	c.send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: r1.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "ServiceEntry default/a: bad port"}})
	r2 := c.next(5 * time.Second)
	if r2.GetVersionInfo() == r1.GetVersionInfo() {
		t.Fatalf("after the NACK got version %s again", r2.GetVersionInfo())
	}
	ts := srv.Clients()[0].Types[0]
	if !ts.Nacked || ts.Nacks != 1 || ts.LastNack == nil || ts.LastNack.Message != "ServiceEntry default/a: bad port" ||
		ts.LastNack.Nonce != r1.GetNonce() || ts.LastNack.Code != int32(codes.InvalidArgument) {
		t.Fatalf("status after NACK = %+v (last NACK %+v)", ts, ts.LastNack)
	}
	if got := testutil.ToFloat64(srv.m.nacks.WithLabelValues(istio.CollectionServiceEntry)); got != 1 {
		t.Fatalf("mcp_bridge_mcp_nacks_total = %v, want 1", got)
	}

	// ACK r2: synced, NACK flag cleared, the detail kept.
	c.send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: r2.GetNonce(), VersionInfo: r2.GetVersionInfo()})
	testkit.WaitUntil(t, 2*time.Second, "ACK recorded", func() bool { return srv.Clients()[0].Types[0].Synced })
	if ts := srv.Clients()[0].Types[0]; ts.Nacked || ts.LastNack == nil || ts.AckedVersion != r2.GetVersionInfo() {
		t.Fatalf("status after ACK = %+v", ts)
	}

	// An empty nonce asks again: the same version, a new nonce.
	c.send(&discovery.DiscoveryRequest{TypeUrl: seV1})
	r3 := c.next(5 * time.Second)
	if r3.GetVersionInfo() != r2.GetVersionInfo() || r3.GetNonce() == r2.GetNonce() {
		t.Fatalf("re-request got version %s nonce %s; want version %s and a nonce other than %s",
			r3.GetVersionInfo(), r3.GetNonce(), r2.GetVersionInfo(), r2.GetNonce())
	}
}

// TestAckTimeout: a client that never replies still gets newer versions after AckTimeout.
func TestAckTimeout(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{AckTimeout: 300 * time.Millisecond}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	c := startAdsc(t, srv.addr, []string{seV1}, adscOptions{noAck: true})
	c.next(5 * time.Second)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 1)}})
	start := time.Now()
	c.next(5 * time.Second)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("newer version sent after %v, before the 300 ms ACK timeout", d)
	}
}

// TestSlowClientDoesNotBlockOthers: a client that stops reading holds up nobody, and when it
// reads again it gets the latest state, not every version it missed.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	state := func(gen int) map[string][]*Resource {
		var rs []*Resource
		for i := 0; i < 200; i++ {
			rs = append(rs, serviceEntry("default", "svc-"+itoa3(i), 50, gen))
		}
		return map[string][]*Resource{istio.CollectionServiceEntry: rs}
	}
	srv.Set(state(0))

	// The slow client subscribes and does not read: its ~1.5 MB response fills the windows.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, srv.addr)).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := newAdsc(t, stream, true)
	slow.send(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: istiodNode()})

	fast := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	v0 := fast.next(5 * time.Second).GetVersionInfo()
	var last string
	for gen := 1; gen <= 4; gen++ {
		srv.Set(state(gen))
		start := time.Now()
		r := fast.next(5 * time.Second)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("push %d reached the fast client after %v", gen, d)
		}
		last = r.GetVersionInfo()
	}

	go slow.recv()
	r := slow.next(5 * time.Second)
	if r.GetVersionInfo() != v0 {
		t.Fatalf("the slow client's first response has version %s, want the one current when it subscribed (%s)", r.GetVersionInfo(), v0)
	}
	if r = slow.next(5 * time.Second); r.GetVersionInfo() != last {
		t.Fatalf("after its ACK the slow client got version %s, want the latest %s", r.GetVersionInfo(), last)
	}
	slow.expectNone(300 * time.Millisecond)
}

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

// TestShutdown: Close ends streams with status OK, GracefulStop then returns, and new streams are
// refused.
func TestShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	c := startAdsc(t, srv.addr, istio.TypeURLs(31), adscOptions{})
	c.next(5 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Shutdown")
	}
	if err := c.streamErr(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean end (io.EOF)", err)
	}
	stopped := make(chan struct{})
	go func() { srv.g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return after Shutdown")
	}
	if len(srv.Clients()) != 0 {
		t.Fatalf("clients after shutdown: %+v", srv.Clients())
	}
}

// TestClosedServerRefusesStreams: a stream opened after Close fails with Unavailable, so the
// client retries elsewhere.
func TestClosedServerRefusesStreams(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{})
	srv.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, srv.addr)).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv on a closed server: %v, want Unavailable", err)
	}
}

// TestNamedResources: a SotW client naming resources (Istiod never does) gets just those.
func TestNamedResources(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0), serviceEntry("default", "b", 1, 0)}})
	c := startAdsc(t, srv.addr, nil, adscOptions{})
	c.send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResourceNames: []string{"default/b", "nope/x"}, Node: istiodNode()})
	c.next(5 * time.Second)
	if got := c.names(seV1); !slices.Equal(got, []string{"default/b"}) {
		t.Fatalf("named request got %v, want [default/b]", got)
	}
}

// TestWithoutServerOptionsCodec: a grpc.Server built without ServerOptions still sends correct
// responses (copied once more per client, counted); with it nothing is copied.
func TestWithoutServerOptionsCodec(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		opts       []grpc.ServerOption
		wantCopies bool
	}{
		{name: "ServerOptions", opts: nil},
		{name: "keepalive only", opts: []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second})}, wantCopies: true},
	}
	a := serviceEntry("default", "a", 3, 0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{}, tc.opts)
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {a}})
			c := startAdsc(t, srv.addr, istio.TypeURLs(31), adscOptions{})
			for range istio.TypeURLs(31) {
				c.next(5 * time.Second)
			}
			c.mu.Lock()
			env := c.state[seV1]["default/a"]
			c.mu.Unlock()
			checkEnvelope(t, env, a)
			if copies := testutil.ToFloat64(srv.m.copies); (copies > 0) != tc.wantCopies {
				t.Fatalf("mcp_bridge_mcp_response_copies_total = %v, want copies: %v", copies, tc.wantCopies)
			}
		})
	}
}
