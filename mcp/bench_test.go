package mcp

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcpserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/internal/rawads"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// fixture is one benchmark data set in two generations whose every resource differs, so
// alternating between them forces a full re-marshal.
type fixture struct {
	name       string
	collection string
	typeURL    string
	instances  int
	gens       [2][]*Resource
}

// Scale from docs/scale.md: 10k services with 100k instances inline as ServiceEntry endpoints, or
// 100k WorkloadEntries.
func benchFixtures() []fixture {
	se := fixture{name: "ServiceEntry-10k-svc-100k-inst", collection: istio.CollectionServiceEntry, typeURL: seV1, instances: 100_000}
	we := fixture{name: "WorkloadEntry-100k", collection: istio.CollectionWorkloadEntry, typeURL: weV1, instances: 100_000}
	for g := range 2 {
		for i := range 10_000 {
			se.gens[g] = append(se.gens[g], serviceEntry(fmt.Sprintf("ns-%02d", i/1000), fmt.Sprintf("svc-%05d", i), 10, g))
		}
		for i := range 100_000 {
			we.gens[g] = append(we.gens[g], workloadEntry(fmt.Sprintf("ns-%02d", i/1000), fmt.Sprintf("svc-%05d-%d", i/10, i%10), i, g))
		}
	}
	return []fixture{se, we}
}

// BenchmarkBuildFull: building a full SotW response from nothing: every resource marshalled
// into its envelope, the version hashed, the body assembled.
func BenchmarkBuildFull(b *testing.B) {
	for _, fx := range benchFixtures() {
		b.Run(fx.name, func(b *testing.B) {
			var bytes int
			for b.Loop() {
				snap, st := buildSnapshot(fx.collection, newEmptySnapshot(""), fx.gens[0])
				bytes = snap.size
				if st.marshalled != len(fx.gens[0]) {
					b.Fatalf("marshalled %d of %d", st.marshalled, len(fx.gens[0]))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fx.instances), "ns/instance")
			b.ReportMetric(float64(bytes), "response-bytes")
		})
	}
}

// BenchmarkPush measures one push end to end over loopback gRPC to pushClients clients: the
// caller's change, the server's work, and the clients receiving the bytes (clients skip decoding
// resources, so their cost is the transport's). CPU time is the whole process's (server and
// clients). "full" alternates between two generations that differ in every resource; "one"
// changes one resource (one instance) per push.
//
//   - mcp: this package with ServerOptions (pre-encoded responses passed through).
//   - mcp-nocodec: this package on a grpc.Server without the passthrough codec (one copy per client).
//   - go-control-plane: its LinearCache + sotw server with the same envelopes as resources. Its
//     "one" response carries only the changed resource, which is not valid MCP (Istiod treats
//     every response as the full state and would delete the rest); it is measured anyway as the
//     lower bound of what that path can cost.
func BenchmarkPush(b *testing.B) {
	const pushClients = 2
	for _, fx := range benchFixtures() {
		for _, impl := range []string{"mcp", "mcp-nocodec", "go-control-plane"} {
			for _, kind := range []string{"full", "one"} {
				b.Run(fx.name+"/"+impl+"/"+kind, func(b *testing.B) {
					var p pusher
					if impl == "go-control-plane" {
						p = newGCPPusher(b, fx)
					} else {
						p = newMCPPusher(b, fx, impl == "mcp")
					}
					clients := make([]*rawClient, pushClients)
					for i := range clients {
						clients[i] = startRawClient(b, p.addr(), fx.typeURL)
						clients[i].wait(b)
					}
					cur := make([]*Resource, len(fx.gens[0]))
					copy(cur, fx.gens[0])
					gen := 0
					var bytes int
					before := cpuTime()
					start := p.marshalled()
					for b.Loop() {
						gen ^= 1
						if kind == "full" {
							p.push(gen, fx.gens[gen], nil)
						} else {
							j := len(cur) / 2
							cur[j] = fx.gens[gen][j]
							p.push(gen, cur, cur[j])
						}
						for _, c := range clients {
							bytes += c.wait(b)
						}
					}
					cpu := cpuTime() - before
					n := float64(b.N)
					b.ReportMetric(float64(cpu.Microseconds())/1e3/n, "cpu-ms/op")
					b.ReportMetric(float64(cpu.Nanoseconds())/n/float64(fx.instances), "cpu-ns/instance")
					b.ReportMetric(float64(bytes)/n/pushClients, "sent-B/client/op")
					if m := p.marshalled(); m >= 0 {
						b.ReportMetric(float64(m-start)/n, "marshalled/op")
					}
				})
			}
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type pusher interface {
	addr() string
	// push makes all (generation gen, or gen only for changed) the new state.
	push(gen int, all []*Resource, changed *Resource)
	marshalled() float64 // resources marshalled so far; -1 when unknown
}

type mcpPusher struct {
	srv *testServer
	fx  fixture
}

func newMCPPusher(b *testing.B, fx fixture, codec bool) *mcpPusher {
	var opts []grpc.ServerOption // nil: ServerOptions()
	if !codec {
		opts = []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second})}
	}
	p := &mcpPusher{srv: startServer(b, Options{}, opts), fx: fx}
	p.srv.Set(map[string][]*Resource{fx.collection: fx.gens[0]})
	return p
}

func (p *mcpPusher) addr() string { return p.srv.addr }
func (p *mcpPusher) push(_ int, all []*Resource, _ *Resource) {
	p.srv.Set(map[string][]*Resource{p.fx.collection: all})
}
func (p *mcpPusher) marshalled() float64 {
	return testutil.ToFloat64(p.srv.m.marshalled.WithLabelValues(p.fx.collection))
}

type gcpPusher struct {
	lc   *cache.LinearCache
	a    string
	envs [2]map[string]cachetypes.Resource
}

func newGCPPusher(b *testing.B, fx fixture) *gcpPusher {
	p := &gcpPusher{lc: cache.NewLinearCache(fx.typeURL)}
	for g := range 2 {
		p.envs[g] = map[string]cachetypes.Resource{}
		for _, r := range fx.gens[g] {
			key := r.Namespace + "/" + r.Name
			p.envs[g][key] = &mcpapi.Resource{
				Metadata: &mcpapi.Metadata{Name: key, Version: r.Version, Labels: r.Labels, Annotations: r.Annotations},
				Body:     r.Body,
			}
		}
	}
	p.lc.SetResources(p.envs[0])
	ctx, cancel := context.WithCancel(context.Background())
	g := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second}))
	discovery.RegisterAggregatedDiscoveryServiceServer(g, gcpserver.NewServer(ctx, p.lc, nil))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	b.Cleanup(func() { cancel(); g.Stop() })
	p.a = l.Addr().String()
	return p
}

func (p *gcpPusher) addr() string { return p.a }
func (p *gcpPusher) push(gen int, _ []*Resource, changed *Resource) {
	if changed == nil {
		p.lc.SetResources(p.envs[gen]) // every resource is new: all marshalled again
		return
	}
	key := changed.Namespace + "/" + changed.Name
	if err := p.lc.UpdateResources(map[string]cachetypes.Resource{key: p.envs[gen][key]}, nil); err != nil {
		panic(err)
	}
}
func (p *gcpPusher) marshalled() float64 { return -1 }

// rawClient is an ACKing SotW client that does not decode resources (see rawads), so the benchmark
// measures the server and the transport, not proto decoding in the client.
type rawClient struct {
	stream grpc.ClientStream
	resps  chan int
	errs   chan error
}

func startRawClient(b *testing.B, addr, typeURL string, extra ...grpc.DialOption) *rawClient {
	cc := dial(b, addr, append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawads.Codec()))}, extra...)...)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	if err != nil {
		b.Fatal(err)
	}
	node := &core.Node{Id: istiodNodeID}
	if err := stream.SendMsg(&discovery.DiscoveryRequest{TypeUrl: typeURL, Node: node, ResponseNonce: time.Now().String()}); err != nil {
		b.Fatal(err)
	}
	c := &rawClient{stream: stream, resps: make(chan int, 16), errs: make(chan error, 1)}
	go func() {
		for {
			r := &rawads.Response{}
			if err := stream.RecvMsg(r); err != nil {
				c.errs <- err
				return
			}
			if err := stream.SendMsg(&discovery.DiscoveryRequest{TypeUrl: r.TypeURL, Node: node, ResponseNonce: r.Nonce, VersionInfo: r.Version}); err != nil {
				c.errs <- err
				return
			}
			c.resps <- r.Size
		}
	}()
	return c
}

// wait returns the size of the next response.
func (c *rawClient) wait(b *testing.B) int {
	select {
	case n := <-c.resps:
		return n
	case err := <-c.errs:
		b.Fatalf("client stream: %v", err)
	case <-time.After(60 * time.Second):
		b.Fatal("no response within 60s")
	}
	return 0
}

// BenchmarkSetOneChange: the server's own cost for a Set in which one resource changed: one
// marshal, then O(n) work without marshalling (order check, merge with the previous snapshot,
// version hash, body assembly by copying bytes already marshalled).
func BenchmarkSetOneChange(b *testing.B) {
	for _, fx := range benchFixtures() {
		b.Run(fx.name, func(b *testing.B) {
			prev, _ := buildSnapshot(fx.collection, newEmptySnapshot(""), fx.gens[0])
			cur := make([]*Resource, len(fx.gens[0]))
			copy(cur, fx.gens[0])
			j, gen := len(cur)/2, 0
			var total buildStats
			for b.Loop() {
				gen ^= 1
				cur[j] = fx.gens[gen][j]
				next, st := buildSnapshot(fx.collection, prev, cur)
				total.marshalled += st.marshalled
				total.marshalledBytes += st.marshalledBytes
				total.builtBytes += st.builtBytes
				prev = next
			}
			b.ReportMetric(float64(total.marshalled)/float64(b.N), "marshalled/op")
			b.ReportMetric(float64(total.marshalledBytes)/float64(b.N), "marshalled-B/op")
			b.ReportMetric(float64(total.builtBytes)/float64(b.N), "built-B/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fx.instances), "ns/instance")
		})
	}
}
