package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/internal/hostile"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// rawStream is a SotW stream the test drives by hand; end reports how it ended.
type rawStream struct {
	discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
}

func openSotw(t testing.TB, cc *grpc.ClientConn) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return &rawStream{s, cancel}
}

// endStatus reads until the stream ends and returns its status.
func endStatus(t testing.TB, s grpc.ClientStream, timeout time.Duration) *status.Status {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if err := s.RecvMsg(&discovery.DiscoveryResponse{}); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return status.Convert(err)
	case <-time.After(timeout):
		t.Fatalf("stream still open after %v", timeout)
		return nil
	}
}

// syncBuffer is a log sink the server writes from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Finding: one client sent ten 32 MiB type URLs on one stream; the server kept them all and
// echoed them on /debug/clients (RSS 31 MB -> 526 MB, then 6.3 GB after one /debug/clients).
// Now a request over the receive limit is refused before it is read, and a long type URL under it
// is refused before it is kept; nothing of either shows on /debug/clients.
func TestFindingHugeTypeURLsAreNotKept(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	cc := dial(t, srv.addr)
	tests := []struct {
		name    string
		typeURL string
		code    codes.Code
		key     string
	}{
		// gRPC itself ends the stream with this status; the log line and the counter name the key.
		{"type URL over the receive limit", strings.Repeat("x", 8<<20), codes.ResourceExhausted, "larger than max"},
		{"type URL under the receive limit", strings.Repeat("y", 1<<20), codes.InvalidArgument, "mcp.limits.maxTypeURLBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSotw(t, cc)
			for range 10 {
				if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: tt.typeURL, Node: istiodNode()}); err != nil {
					break // the server ended the stream
				}
			}
			st := endStatus(t, s, 5*time.Second)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.key) {
				t.Fatalf("stream ended with %v %q; want %v naming %s", st.Code(), truncate(st.Message(), 200), tt.code, tt.key)
			}
		})
	}
	testkit.WaitUntil(t, 5*time.Second, "the streams to be gone", func() bool { return len(srv.Clients()) == 0 })
	for _, limit := range []string{limitRecvMessage, limitTypeURL} {
		if got := testutil.ToFloat64(srv.m.limitRejections.WithLabelValues(limit)); got != 1 {
			t.Errorf("mcp_bridge_mcp_limit_rejections_total{limit=%q} = %v, want 1", limit, got)
		}
	}
}

// Finding: every NACK was logged at WARN with the full node id and error text; 20 NACKs of
// 4 MiB grew the log by 168 MB. Now NACK lines are rate-limited and their fields truncated,
// and the message kept for /debug/clients is truncated to maxDetailBytes.
func TestFindingNackFloodDoesNotFloodTheLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	srv := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	a := startAdsc(t, srv.addr, []string{seV1}, adscOptions{noAck: true})
	resp := a.nextFor(seV1, 5*time.Second)
	before := logs.Len()
	const nacks = 20
	huge := strings.Repeat("n", 1536<<10) // version and message together under the 4 MiB receive limit
	for range nacks {
		a.send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: resp.GetNonce(), VersionInfo: huge,
			Node: &core.Node{Id: istiodNodeID}, ErrorDetail: &rpcstatus.Status{Code: 3, Message: huge}})
	}
	nacked := func() float64 { return testutil.ToFloat64(srv.m.nacks.WithLabelValues(istio.CollectionServiceEntry)) }
	testkit.WaitUntil(t, 10*time.Second, "every NACK recorded", func() bool { return nacked() == nacks })
	if grown := logs.Len() - before; grown > 4<<10 {
		t.Fatalf("%d NACKs of 3 MiB of text grew the log by %d bytes, want under 4 KiB", nacks, grown)
	}
	if !strings.Contains(logs.String(), "client rejected a response") {
		t.Fatalf("the first NACK was not logged:\n%s", logs.String())
	}
	js, err := json.Marshal(srv.Clients())
	if err != nil {
		t.Fatal(err)
	}
	if len(js) > 8<<10 {
		t.Fatalf("/debug/clients is %d bytes after the NACKs, want under 8 KiB", len(js))
	}
}

// Each limit refuses the stream with a status naming the limit and its key, and counts it.
func TestLimitsRefuseClearly(t *testing.T) {
	t.Parallel()
	limits := Limits{MaxRecvMessageBytes: 64 << 10, MaxTypeURLBytes: 128, MaxNodeIDBytes: 256, MaxTypesPerStream: 16,
		MaxResourceNameBytesPerStream: 1000, MaxStreams: 6, MaxStreamsPerPeer: 3}
	long := func(n int) string { return strings.Repeat("z", n) }
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("default/name-%04d", i)
		}
		return out
	}
	tests := []struct {
		name  string
		reqs  []*discovery.DiscoveryRequest
		delta []*discovery.DeltaDiscoveryRequest
		limit string
		code  codes.Code
	}{
		{name: "request over the receive limit", reqs: []*discovery.DiscoveryRequest{{TypeUrl: seV1, ResourceNames: []string{long(70 << 10)}}},
			limit: limitRecvMessage, code: codes.ResourceExhausted},
		{name: "long type URL", reqs: []*discovery.DiscoveryRequest{{TypeUrl: long(129)}}, limit: limitTypeURL, code: codes.InvalidArgument},
		{name: "long node id", reqs: []*discovery.DiscoveryRequest{{TypeUrl: seV1, Node: &core.Node{Id: long(257)}}}, limit: limitNodeID, code: codes.InvalidArgument},
		{name: "too many types", reqs: func() []*discovery.DiscoveryRequest {
			var rs []*discovery.DiscoveryRequest
			for i := range 17 {
				rs = append(rs, &discovery.DiscoveryRequest{TypeUrl: fmt.Sprintf("example.com/v1/T%d", i)})
			}
			return rs
		}(), limit: limitTypes, code: codes.ResourceExhausted},
		{name: "SotW resource names over the budget", reqs: []*discovery.DiscoveryRequest{{TypeUrl: seV1, ResourceNames: names(30)},
			{TypeUrl: weV1, ResourceNames: names(30)}}, limit: limitResourceNames, code: codes.ResourceExhausted},
		{name: "Delta subscriptions over the budget", delta: []*discovery.DeltaDiscoveryRequest{{TypeUrl: seV1, ResourceNamesSubscribe: names(30)},
			{TypeUrl: seV1, ResourceNamesSubscribe: names(70)[30:]}}, limit: limitResourceNames, code: codes.ResourceExhausted},
		{name: "Delta initial versions over the budget", delta: []*discovery.DeltaDiscoveryRequest{{TypeUrl: seV1,
			InitialResourceVersions: map[string]string{long(600): "v1", long(500): "v2"}}}, limit: limitResourceNames, code: codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{Limits: limits}, ServerOptionsFor(limits))
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
			cc := dial(t, srv.addr)
			var stream grpc.ClientStream
			if tt.delta != nil {
				s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range tt.delta {
					_ = s.Send(r)
				}
				stream = s
			} else {
				s := openSotw(t, cc)
				for _, r := range tt.reqs {
					_ = s.Send(r)
				}
				stream = s
			}
			st := endStatus(t, stream, 5*time.Second)
			want := []string{limitKey(tt.limit), tt.limit}
			if tt.limit == limitRecvMessage {
				want = []string{"larger than max"} // gRPC's own status; the log names the key
			}
			if st.Code() != tt.code || !containsAll(st.Message(), want) {
				t.Fatalf("stream ended with %v %q; want %v naming %s and %s", st.Code(), st.Message(), tt.code, tt.limit, limitKey(tt.limit))
			}
			if got := testutil.ToFloat64(srv.m.limitRejections.WithLabelValues(tt.limit)); got != 1 {
				t.Fatalf("rejections{limit=%q} = %v, want 1", tt.limit, got)
			}
		})
	}

	t.Run("streams per peer and in all", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, Options{Limits: limits}, ServerOptionsFor(limits))
		srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
		open := func(from string, want codes.Code, limit string) {
			t.Helper()
			s := openSotw(t, dialFrom(t, srv.addr, from))
			if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: istiodNode()}); err != nil {
				t.Fatal(err)
			}
			if want == codes.OK {
				if _, err := s.Recv(); err != nil {
					t.Fatalf("stream from %s refused: %v", from, err)
				}
				return
			}
			if st := endStatus(t, s, 5*time.Second); st.Code() != want || !strings.Contains(st.Message(), limitKey(limit)) {
				t.Fatalf("stream from %s ended with %v %q, want %v naming %s", from, st.Code(), st.Message(), want, limitKey(limit))
			}
		}
		for range 3 {
			open("127.0.0.1", codes.OK, "")
		}
		open("127.0.0.1", codes.ResourceExhausted, limitStreamsPeer)
		for range 3 {
			open("127.0.0.2", codes.OK, "")
		}
		open("127.0.0.3", codes.ResourceExhausted, limitStreams)
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// dialFrom dials addr from a given loopback address, so tests can be several peers.
func dialFrom(t testing.TB, addr, local string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := hostile.Dial(addr, local, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// A client that stops reading is cut off, freeing what its stream held; a well-behaved client
// keeps receiving meanwhile. gRPC takes a first response whole into its send queue, so the stream
// waits for the ACK timeout, then the next send blocks under flow control for sendTimeout.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	t.Parallel()
	limits := Limits{SendTimeout: time.Second}
	srv := startServer(t, Options{Limits: limits, AckTimeout: 500 * time.Millisecond}, ServerOptionsFor(limits))
	var big []*Resource
	for i := range 2000 {
		big = append(big, serviceEntry("default", fmt.Sprintf("svc-%04d", i), 10, 0))
	}
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: big})
	// 64 KiB windows and no Recv: the ~2 MB response cannot be delivered.
	stuck := openSotw(t, dial(t, srv.addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	if err := stuck.Send(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: istiodNode()}); err != nil {
		t.Fatal(err)
	}
	good := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	good.nextFor(seV1, 5*time.Second)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: append(big[1:], serviceEntry("default", "svc-0000", 10, 1))})
	good.nextFor(seV1, 5*time.Second)
	testkit.WaitUntil(t, 5*time.Second, "the stuck stream to be cut off", func() bool {
		return testutil.ToFloat64(srv.m.limitRejections.WithLabelValues(limitSendTimeout)) == 1 && len(srv.Clients()) == 1
	})
}

// /debug/clients is paginated: a page holds at most limit clients and says how many there are.
func TestClientsPage(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	for range 7 {
		startAdsc(t, srv.addr, []string{seV1}, adscOptions{}).nextFor(seV1, 5*time.Second)
	}
	tests := []struct {
		offset, limit, want int
	}{{0, 5, 5}, {5, 5, 2}, {7, 5, 0}, {100, 5, 0}, {0, -1, 7}}
	for _, tt := range tests {
		p := srv.ClientsPage(tt.offset, tt.limit)
		if p.Total != 7 || len(p.Clients) != tt.want {
			t.Errorf("ClientsPage(%d, %d): total %d, %d clients; want 7, %d", tt.offset, tt.limit, p.Total, len(p.Clients), tt.want)
		}
	}
	all := srv.ClientsPage(0, -1).Clients
	if second := srv.ClientsPage(1, 1).Clients; len(second) != 1 || second[0].ID != all[1].ID {
		t.Errorf("page (1, 1) = %v, want the second oldest client %s", second, all[1].ID)
	}
}
