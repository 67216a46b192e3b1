// Package pipeline_test follows ZooKeeper registrations through the whole bridge (the real
// pipeline package: adapter, merge, bridge, MCP server) to an MCP client. It lives apart from the adapter's own tests so those
// build and run without the rest of the pipeline.
package pipeline_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry/zookeeper"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

const (
	typeSE = "networking.istio.io/v1/ServiceEntry"
	typeWE = "networking.istio.io/v1/WorkloadEntry"
)

// running is the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs it) for one
// ZooKeeper registry named "zk", in workloadEntry mode, with its MCP server on a loopback port.
type running struct {
	addr string
}

func startPipeline(t testing.TB, zkCfg zookeeper.Config, debounce merge.Debounce) *running {
	t.Helper()
	cfg := &config.Config{
		Registries: []config.Registry{{Name: "zk", Type: "zookeeper", Namespace: "zk", Config: &zkCfg}},
		Debounce:   debounce,
		Translate:  translate.Options{EndpointMode: translate.EndpointModeWorkloadEntry},
	}
	cfg.Translate.Registries = cfg.TranslateRegistries()
	p, err := pipeline.New(cfg, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(mcp.ServerOptions()...)
	p.Server().Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		p.Server().Close()
		g.Stop()
	})
	return &running{addr: l.Addr().String()}
}

// adsClient subscribes to ServiceEntries and WorkloadEntries like an Istio >= 1.24 MCP client,
// ACKs every response, and remembers when each WorkloadEntry address first arrived.
type adsClient struct {
	mu      sync.Mutex
	se      map[string]*networking.ServiceEntry
	we      map[string]*networking.WorkloadEntry
	firstWE map[string]time.Time // by address
	changed chan struct{}
	err     error
}

func startADS(t testing.TB, addr string) *adsClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	c := &adsClient{se: map[string]*networking.ServiceEntry{}, we: map[string]*networking.WorkloadEntry{},
		firstWE: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	for _, u := range []string{typeSE, typeWE} {
		if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: u, Node: node}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err == nil {
				err = c.apply(resp)
			}
			if err == nil {
				err = stream.Send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), Node: node})
			}
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
		}
	}()
	return c
}

func (c *adsClient) apply(resp *discovery.DiscoveryResponse) error {
	now := time.Now()
	se := map[string]*networking.ServiceEntry{}
	we := map[string]*networking.WorkloadEntry{}
	for _, r := range resp.GetResources() {
		env := &mcpapi.Resource{}
		if err := r.UnmarshalTo(env); err != nil {
			return err
		}
		body, err := env.GetBody().UnmarshalNew()
		if err != nil {
			return err
		}
		switch spec := body.(type) {
		case *networking.ServiceEntry:
			se[env.GetMetadata().GetName()] = spec
		case *networking.WorkloadEntry:
			we[env.GetMetadata().GetName()] = spec
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch resp.GetTypeUrl() {
	case typeSE:
		c.se = se
	case typeWE:
		c.we = we
		for _, w := range we {
			if _, ok := c.firstWE[w.GetAddress()]; !ok {
				c.firstWE[w.GetAddress()] = now
			}
		}
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// workloadEntry returns the WorkloadEntry at address, if served.
func (c *adsClient) workloadEntry(address string) *networking.WorkloadEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.we {
		if w.GetAddress() == address {
			return w
		}
	}
	return nil
}

func (c *adsClient) serviceEntryFor(host string) *networking.ServiceEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.se {
		for _, h := range s.GetHosts() {
			if h == host {
				return s
			}
		}
	}
	return nil
}

func (c *adsClient) waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		c.mu.Lock()
		streamErr := c.err
		c.mu.Unlock()
		if streamErr != nil {
			t.Fatalf("ADS stream failed: %v", streamErr)
		}
		select {
		case <-c.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// TestPipelineServiceEntriesAndWorkloadEntries registers Dubbo providers in a real ZooKeeper
// and follows them through the whole bridge to an MCP client: ServiceEntry and WorkloadEntry
// appear, a configurator's weight reaches the WorkloadEntry, deregistration removes them.
func TestPipelineServiceEntriesAndWorkloadEntries(t *testing.T) {
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	zktest.MkdirAll(t, admin, "/dubbo/com.example.Live/providers", nil)
	p := startPipeline(t, zookeeper.Config{Servers: []string{z.Addr()}, ResyncInterval: -1}, merge.Debounce{Quiet: 10 * time.Millisecond})
	c := startADS(t, p.addr)
	prov := zktest.Session(t, z.Addr())
	node := zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.6.0.1", 20880))
	zktest.Create(t, prov, node, nil, true)
	c.waitFor(t, 10*time.Second, "the ServiceEntry and WorkloadEntry", func() error {
		se := c.serviceEntryFor("com.example.live")
		if se == nil {
			return fmt.Errorf("no ServiceEntry for com.example.live")
		}
		we := c.workloadEntry("10.6.0.1")
		if we == nil || we.GetWeight() != 100 {
			return fmt.Errorf("WorkloadEntry %v", we)
		}
		return nil
	})
	cfg := "/dubbo/com.example.Live/configurators/" + zktest.JavaURLEncode("override://10.6.0.1:20880/com.example.Live?category=configurators&dynamic=false&weight=40")
	zktest.Create(t, admin, cfg, nil, false)
	c.waitFor(t, 10*time.Second, "the configured weight on the WorkloadEntry", func() error {
		if we := c.workloadEntry("10.6.0.1"); we == nil || we.GetWeight() != 40 {
			return fmt.Errorf("WorkloadEntry %v", we)
		}
		return nil
	})
	zktest.Delete(t, prov, node)
	c.waitFor(t, 10*time.Second, "the WorkloadEntry and ServiceEntry to go", func() error {
		if c.workloadEntry("10.6.0.1") != nil || c.serviceEntryFor("com.example.live") != nil {
			return fmt.Errorf("still served")
		}
		return nil
	})
}

// TestRegisterToSentLatency measures the time from a provider znode being created to its
// WorkloadEntry reaching a connected MCP client, over MCP_BRIDGE_ZK_LATENCY_CHANGES changes
// (default 10; docs/benchmarks.md uses 300), with the merge debounce at its default (100 ms quiet)
// or MCP_BRIDGE_ZK_LATENCY_QUIET.
func TestRegisterToSentLatency(t *testing.T) {
	n := envInt(t, "MCP_BRIDGE_ZK_LATENCY_CHANGES", 10)
	quiet := merge.DefaultQuiet
	if s := os.Getenv("MCP_BRIDGE_ZK_LATENCY_QUIET"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		quiet = d
	}
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	// A realistic background: 200 interfaces with 5 providers each.
	var bg []zktest.Node
	for i := 0; i < 200; i++ {
		for j := 0; j < 5; j++ {
			bg = append(bg, zktest.Node{Path: zktest.ProviderPath("/dubbo", fmt.Sprintf("com.example.bg.Service%d", i), fmt.Sprintf("dubbo://10.7.%d.%d:20880/com.example.bg.Service%d?interface=com.example.bg.Service%d&application=bg", i, j+1, i, i))})
		}
	}
	zktest.CreateMany(t, admin, bg)
	zktest.MkdirAll(t, admin, "/dubbo/com.example.Latency/providers", nil)
	p := startPipeline(t, zookeeper.Config{Servers: []string{z.Addr()}, ResyncInterval: -1}, merge.Debounce{Quiet: quiet})
	c := startADS(t, p.addr)
	c.waitFor(t, 30*time.Second, "the initial state", func() error {
		if c.workloadEntry("10.7.199.5") == nil {
			return fmt.Errorf("background not served yet")
		}
		return nil
	})
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("10.8.%d.%d", i/250, i%250+1)
		start := time.Now()
		zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Latency", fmt.Sprintf("dubbo://%s:20880/com.example.Latency?interface=com.example.Latency&application=lat", addr)), nil, false)
		c.waitFor(t, 10*time.Second, "WorkloadEntry "+addr, func() error {
			if c.workloadEntry(addr) == nil {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		c.mu.Lock()
		lat = append(lat, c.firstWE[addr].Sub(start))
		c.mu.Unlock()
		time.Sleep(quiet + 20*time.Millisecond) // let the debounce settle, so changes do not batch
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[int(math.Ceil(q*float64(len(lat))))-1] }
	t.Logf("register -> WorkloadEntry sent over %d changes (debounce quiet %v): p50 %v, p99 %v, max %v",
		n, quiet, pct(0.50).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	if pct(0.5) > quiet+time.Second {
		t.Errorf("p50 %v: the adapter adds more than a second beyond the debounce", pct(0.5))
	}
}

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive integer", name, s)
	}
	return n
}
