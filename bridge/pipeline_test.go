package bridge

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcp-bridge/mcp-bridge/internal/benchestate"
	"github.com/mcp-bridge/mcp-bridge/internal/rawads"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// This file is the whole bridge in one process, for the pipeline benchmark and its O(changed)
// test: registry sinks -> merge.Merger -> Bridge (translate, convert) -> mcp.Server on a loopback
// gRPC listener -> one state-of-the-world ADS client that subscribes to every type Istiod 1.31
// asks for and ACKs every response, as Istiod does. The client reads only the top-level fields of
// a response and counts its resources: decoding the resources is Istiod's cost (the e2e scale
// harness measures that), not the bridge's.

// The estate's two registries: Dubbo services in ZooKeeper, Spring Cloud services in Nacos.
const (
	regZK    = benchestate.RegistryZK
	regNacos = benchestate.RegistryNacos
)

// estate builds n services of per instances each (see benchestate.Estate). Every instance has ten
// registry labels, two of them volatile (timestamp, pid: dropped by translate) and one bulky
// (methods: dropped too). Addresses start at 10.0.0.1, as the recorded pipeline results had them.
func estate(n, per int) []*registry.Service {
	return benchestate.Estate(n, per, benchestate.Options{AppPrefix: "shop-app-", FirstAddress: 1, Labels: instanceLabels})
}

func instanceLabels(s *registry.Service, i, j int) map[string]string {
	l := map[string]string{
		"application": fmt.Sprintf("app-%d", i), "version": fmt.Sprintf("v%d", j%2), "release": "3.2.10",
		"timestamp": fmt.Sprintf("17123456%05d", j), "pid": fmt.Sprint(4000 + j),
	}
	switch s.Kind {
	case registry.KindDubboInterface:
		l["side"], l["dubbo"], l["anyhost"], l["dubbo.tag"] = "provider", "2.0.2", "true", []string{"stable", "gray"}[j%2]
		l["methods"] = "create,get,list,update,delete"
	case registry.KindDubboApplication:
		l["dubbo.metadata.revision"], l["dubbo.metadata.storage-type"], l["dubbo.tag"] = "8a3f6c1d2e", "local", "stable"
		l["methods"], l["side"] = "create,get,list", "provider"
	default:
		l["preserved.register.source"], l["secure"], l["zone"] = "SPRING_CLOUD", "false", fmt.Sprintf("cn-hangzhou-%c", 'a'+j%3)
		l["management.port"], l["team"] = "8081", "web"
	}
	return l
}

// byRegistry clones the estate (the merger takes ownership of what it is given) and splits it by
// registry.
func byRegistry(services []*registry.Service) map[string][]*registry.Service {
	out := map[string][]*registry.Service{}
	for _, s := range services {
		out[s.Registry] = append(out[s.Registry], s.Clone())
	}
	return out
}

// translateOptions: the label mode is translate's default unless MCP_BRIDGE_BENCH_LABELS names
// one (all: the figures before lean endpoints, docs/benchmarks.md).
func translateOptions(mode string) translate.Options {
	return translate.Options{EndpointMode: mode, MaxWorkloadEntriesPerNamespace: -1, Registries: []translate.RegistryOptions{
		{Name: regZK, Hosts: typeHosts("zookeeper")}, {Name: regNacos, Hosts: typeHosts("nacos")},
	}, Labels: translate.LabelOptions{Mode: os.Getenv("MCP_BRIDGE_BENCH_LABELS")}}
}

// typeHosts returns a registry type's default host templates from the registry table.
func typeHosts(typ string) translate.HostTemplates {
	t, ok := registries.Lookup(typ)
	if !ok {
		panic("no registry type " + typ)
	}
	return t.DefaultHosts
}

// pipeline is one running bridge with its client. close it when done.
type pipeline struct {
	bridge *Bridge
	server *mcp.Server
	reg    *prometheus.Registry
	sinks  map[string]registry.Sink
	client *adsClient
	pushed chan struct{} // one token after each push

	cancel context.CancelFunc
	g      *grpc.Server
	cc     *grpc.ClientConn
	done   chan struct{} // the merge loop returned
}

// istioMinor is the Istio version whose subscriptions the client copies (the e2e Istiod's).
const istioMinor = 31

func newPipeline(tb testing.TB, mode string) *pipeline {
	tb.Helper()
	tr, err := translate.New(translateOptions(mode))
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	// A debounce of 1 ns: the loop emits as soon as it sees an event, so the benchmark times the
	// pipeline's work rather than the configured wait (100 ms by default).
	m, err := merge.New(merge.Options{Registries: []string{regZK, regNacos}, Key: tr.Host, Metrics: reg,
		Debounce: merge.Debounce{Quiet: time.Nanosecond, Max: time.Nanosecond}})
	if err != nil {
		tb.Fatal(err)
	}
	srv := mcp.NewServer(mcp.Options{Metrics: reg})
	p := &pipeline{
		bridge: New(Options{Merger: m, Translator: tr, Server: srv, Metrics: reg}),
		server: srv,
		reg:    reg,
		sinks:  map[string]registry.Sink{regZK: m.Sink(regZK), regNacos: m.Sink(regNacos)},
		pushed: make(chan struct{}, 1),
		g:      grpc.NewServer(mcp.ServerOptions()...),
		done:   make(chan struct{}),
	}
	srv.Register(p.g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	go func() { _ = p.g.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		m.Run(ctx, func(s *merge.Snapshot) {
			p.bridge.Push(s)
			select {
			case p.pushed <- struct{}{}:
			default:
			}
		})
	}()
	p.cc, err = grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.ForceCodecV2(rawads.Codec())))
	if err != nil {
		tb.Fatal(err)
	}
	p.client = startADSClient(tb, ctx, p.cc, istio.TypeURLs(istioMinor))
	// Wait until the server holds the subscriptions, so nothing of the first push is spent on them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cs := srv.Clients(); len(cs) == 1 && len(cs[0].Types) == len(istio.TypeURLs(istioMinor)) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the ADS client's subscriptions did not reach the server within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return p
}

func (p *pipeline) close() {
	p.cancel()
	p.server.Close()
	p.g.Stop()
	p.cc.Close()
	<-p.done
}

// cost is what the pipeline did between two readings: process CPU time (server and client: they
// share the process), the mcp server's metrics, and what the client received.
type cost struct {
	wall, cpu       time.Duration
	marshalled      map[string]float64 // by collection
	marshalledBytes float64
	builtBytes      float64 // SotW response bodies assembled
	sentBytes       float64 // written to the client
	received        int64   // bytes of responses the client decoded
	responses       int64
}

func (c cost) marshalledAll() float64 {
	var n float64
	for _, v := range c.marshalled {
		n += v
	}
	return n
}

type reading struct {
	at      time.Time
	cpu     time.Duration
	metrics cost
}

func (p *pipeline) read(tb testing.TB) reading {
	tb.Helper()
	c := cost{marshalled: map[string]float64{}}
	mfs, err := p.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "mcp_bridge_mcp_resources_marshalled_total":
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "collection" {
						c.marshalled[lp.GetValue()] += v
					}
				}
			case "mcp_bridge_mcp_marshalled_bytes_total":
				c.marshalledBytes += v
			case "mcp_bridge_mcp_response_bytes_built_total":
				c.builtBytes += v
			case "mcp_bridge_mcp_sent_bytes_total":
				c.sentBytes += v
			}
		}
	}
	c.received, c.responses = p.client.totals()
	return reading{at: time.Now(), cpu: cpuTime(), metrics: c}
}

// since returns the cost from r to now.
func (p *pipeline) since(tb testing.TB, r reading) cost {
	tb.Helper()
	now := p.read(tb)
	c := cost{
		wall: now.at.Sub(r.at), cpu: now.cpu - r.cpu, marshalled: map[string]float64{},
		marshalledBytes: now.metrics.marshalledBytes - r.metrics.marshalledBytes,
		builtBytes:      now.metrics.builtBytes - r.metrics.builtBytes,
		sentBytes:       now.metrics.sentBytes - r.metrics.sentBytes,
		received:        now.metrics.received - r.metrics.received,
		responses:       now.metrics.responses - r.metrics.responses,
	}
	for coll, v := range now.metrics.marshalled {
		c.marshalled[coll] = v - r.metrics.marshalled[coll]
	}
	return c
}

// replaceAll sends every registry's full state, as adapters do at start, and waits until the
// client has the result.
func (p *pipeline) replaceAll(tb testing.TB, byReg map[string][]*registry.Service) {
	tb.Helper()
	p.drainPushed()
	for _, name := range []string{regZK, regNacos} {
		p.sinks[name].Replace(byReg[name])
	}
	p.waitPushed(tb)
}

// upsert sends one changed service and waits until the client has the result.
func (p *pipeline) upsert(tb testing.TB, s *registry.Service) {
	tb.Helper()
	p.drainPushed()
	p.sinks[s.Registry].Upsert([]*registry.Service{s})
	p.waitPushed(tb)
}

func (p *pipeline) drainPushed() {
	select {
	case <-p.pushed:
	default:
	}
}

// waitPushed waits for the push, then until the client has received the current version of
// every type it subscribed to (types whose collection did not change need nothing more).
func (p *pipeline) waitPushed(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.pushed:
	case <-time.After(2 * time.Minute):
		tb.Fatal("no push within 2 minutes")
	}
	want := p.currentVersions(tb)
	if err := p.client.waitVersions(want, 2*time.Minute); err != nil {
		tb.Fatal(err)
	}
}

// currentVersions maps each subscribed type URL to the version the server now serves for it.
func (p *pipeline) currentVersions(tb testing.TB) map[string]string {
	tb.Helper()
	cs := p.server.Clients()
	if len(cs) != 1 {
		tb.Fatalf("%d clients connected, want 1", len(cs))
	}
	want := map[string]string{}
	for _, ts := range cs[0].Types {
		want[ts.TypeURL] = ts.CurrentVersion
	}
	return want
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// adsClient is a SotW ADS client that ACKs like Istiod's MCP client: the initial requests carry a
// garbage nonce, every response is ACKed with its version and nonce.
type adsClient struct {
	kick chan struct{} // a token after every response

	mu        sync.Mutex
	versions  map[string]string // type URL -> last version received
	resources map[string]int    // type URL -> resources in the last response
	received  int64
	responses int64
	err       error
}

const istiodNodeID = "sidecar~10.244.0.7~istiod-bench.istio-system~istio-system.svc.cluster.local"

func startADSClient(tb testing.TB, ctx context.Context, cc *grpc.ClientConn, typeURLs []string) *adsClient {
	tb.Helper()
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	if err != nil {
		tb.Fatal(err)
	}
	node := &core.Node{Id: istiodNodeID}
	for i, u := range typeURLs {
		req := &discovery.DiscoveryRequest{TypeUrl: u, ResponseNonce: time.Now().String()}
		if i == 0 {
			req.Node = node
		}
		if err := stream.SendMsg(req); err != nil {
			tb.Fatal(err)
		}
	}
	c := &adsClient{kick: make(chan struct{}, 1), versions: map[string]string{}, resources: map[string]int{}}
	go func() {
		for {
			r := &rawads.Response{}
			err := stream.RecvMsg(r)
			if err == nil {
				err = stream.SendMsg(&discovery.DiscoveryRequest{TypeUrl: r.TypeURL, VersionInfo: r.Version, ResponseNonce: r.Nonce})
			}
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.versions[r.TypeURL] = r.Version
				c.resources[r.TypeURL] = r.Resources
				c.received += int64(r.Size)
				c.responses++
			}
			c.mu.Unlock()
			select {
			case c.kick <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *adsClient) totals() (received, responses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received, c.responses
}

// lastResources returns how many resources the last response of a type carried.
func (c *adsClient) lastResources(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resources[typeURL]
}

// waitVersions waits until the client has received, for every type URL of want, that version.
func (c *adsClient) waitVersions(want map[string]string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		err := c.err
		var missing string
		for u, v := range want {
			if c.versions[u] != v {
				missing = fmt.Sprintf("%s: have version %q, want %q", u, c.versions[u], v)
				break
			}
		}
		c.mu.Unlock()
		switch {
		case missing == "":
			return nil
		case err != nil:
			return fmt.Errorf("ADS client stream ended: %w (still waiting for %s)", err, missing)
		}
		select {
		case <-c.kick:
		case <-deadline:
			return fmt.Errorf("ADS client: still waiting after %v for %s", timeout, missing)
		}
	}
}
