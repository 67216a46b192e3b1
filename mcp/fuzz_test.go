package mcp

import (
	"context"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// fuzzLimits are small so the fuzzer reaches every limit with short inputs.
func fuzzLimits() Limits {
	return Limits{MaxRecvMessageBytes: 64 << 10, MaxTypeURLBytes: 128, MaxNodeIDBytes: 256, MaxDetailBytes: 128,
		MaxTypesPerStream: 16, MaxResourceNameBytesPerStream: 4 << 10, MaxStreams: 8, MaxStreamsPerPeer: 8, SendTimeout: time.Second}
}

// decodeRequests turns fuzz bytes into a stream of requests: each chunk is a length byte, a
// protocol bit and that many bytes of a DiscoveryRequest (even) or DeltaDiscoveryRequest (odd)
// in wire form; chunks that do not decode are skipped.
func decodeRequests(data []byte) (sotw []*discovery.DiscoveryRequest, delta []*discovery.DeltaDiscoveryRequest) {
	for len(data) >= 2 {
		n, kind := int(data[0]), data[1]
		data = data[2:]
		n = min(n, len(data))
		chunk := data[:n]
		data = data[n:]
		if kind%2 == 0 {
			r := &discovery.DiscoveryRequest{}
			if proto.Unmarshal(chunk, r) == nil {
				sotw = append(sotw, r)
			}
		} else {
			r := &discovery.DeltaDiscoveryRequest{}
			if proto.Unmarshal(chunk, r) == nil {
				delta = append(delta, r)
			}
		}
	}
	return sotw, delta
}

// FuzzRequests sends a fuzzed sequence of requests on a SotW and a Delta stream to a running
// server and checks that nothing it keeps goes past the limits and that it still serves.
func FuzzRequests(f *testing.F) {
	seed := func(msgs ...proto.Message) []byte {
		var out []byte
		for _, m := range msgs {
			b, err := proto.Marshal(m)
			if err != nil || len(b) > 255 {
				f.Fatalf("seed: %v (%d bytes)", err, len(b))
			}
			kind := byte(0)
			if _, ok := m.(*discovery.DeltaDiscoveryRequest); ok {
				kind = 1
			}
			out = append(append(out, byte(len(b)), kind), b...)
		}
		return out
	}
	f.Add(seed(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}}))
	f.Add(seed(&discovery.DiscoveryRequest{TypeUrl: seV1}, &discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: "1",
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "rejected"}}))
	f.Add(seed(&discovery.DeltaDiscoveryRequest{TypeUrl: seV1, ResourceNamesSubscribe: []string{"*", "default/a"}},
		&discovery.DeltaDiscoveryRequest{TypeUrl: seV1, ResourceNamesUnsubscribe: []string{"default/a"}}))
	f.Add(seed(&discovery.DeltaDiscoveryRequest{TypeUrl: weV1, InitialResourceVersions: map[string]string{"default/w": "v1"}}))
	f.Add(seed(&discovery.DiscoveryRequest{TypeUrl: seV1, ResourceNames: []string{"default/a", "default/b", "*"}}))

	srv := startServer(f, Options{Limits: fuzzLimits()}, ServerOptionsFor(fuzzLimits()))
	srv.Set(map[string][]*Resource{
		istio.CollectionServiceEntry:  {serviceEntry("default", "a", 2, 0), serviceEntry("default", "b", 2, 0)},
		istio.CollectionWorkloadEntry: {workloadEntry("default", "w", 1, 0)},
	})
	cc := dial(f, srv.addr)
	client := discovery.NewAggregatedDiscoveryServiceClient(cc)
	f.Fuzz(func(t *testing.T, data []byte) {
		sotw, delta := decodeRequests(data)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d, err := client.DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		drain := func(st grpc.ClientStream, m func() proto.Message) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for st.RecvMsg(m()) == nil {
				}
			}()
		}
		drain(s, func() proto.Message { return &discovery.DiscoveryResponse{} })
		drain(d, func() proto.Message { return &discovery.DeltaDiscoveryResponse{} })
		for _, r := range sotw {
			if s.Send(r) != nil {
				break
			}
		}
		for _, r := range delta {
			if d.Send(r) != nil {
				break
			}
		}
		// Let the server apply what it received, then check what it keeps.
		time.Sleep(time.Millisecond)
		checkBounded(t, srv.Server)
		cancel()
		wg.Wait()
		testkit.WaitUntil(t, 5*time.Second, "the streams to end", func() bool { return srv.ClientsPage(0, 0).Total == 0 })
	})
}

// checkBounded fails if any open stream keeps more than the limits allow.
func checkBounded(t *testing.T, s *Server) {
	t.Helper()
	l := s.limits
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		if len(c.node()) > l.MaxNodeIDBytes || len(c.types) > l.MaxTypesPerStream || c.nameBytes > l.MaxResourceNameBytesPerStream {
			t.Errorf("stream %s keeps node id %d bytes, %d types, %d name bytes", c.id, len(c.node()), len(c.types), c.nameBytes)
		}
		// What the names accounting must cover: SotW names and Delta subscriptions.
		kept := 0
		for u, st := range c.types {
			if len(u) > l.MaxTypeURLBytes {
				t.Errorf("stream %s keeps a type URL of %d bytes", c.id, len(u))
			}
			kept += namesBytes(st.names)
			for n := range st.subscribed {
				kept += len(n)
			}
			if st.lastNack != nil && len(st.lastNack.Message) > l.MaxDetailBytes+32 {
				t.Errorf("stream %s keeps a NACK message of %d bytes", c.id, len(st.lastNack.Message))
			}
			if len(st.ackVersion) > l.MaxDetailBytes+32 {
				t.Errorf("stream %s keeps an ACK version of %d bytes", c.id, len(st.ackVersion))
			}
		}
		if kept > c.nameBytes {
			t.Errorf("stream %s keeps %d name bytes but accounts for %d", c.id, kept, c.nameBytes)
		}
		c.mu.Unlock()
	}
}
