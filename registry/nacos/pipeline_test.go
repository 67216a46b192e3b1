package nacos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
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
	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// serviceEntryType is what Istiod >= 1.24 asks for.
const serviceEntryType = "networking.istio.io/v1/ServiceEntry"

// bridge is the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs it: adapter,
// merge, translate, MCP server) for one Nacos registry named "nacos" with the type's defaults,
// and an ADS client subscribed to ServiceEntries as Istiod's MCP client is.
type bridge struct {
	p   *pipeline.Pipeline
	a   *nacos.Adapter
	rec *nacostest.RecordSink // every call the adapter made, beside the pipeline's own sink
	ads *adsClient
}

// startPipeline runs the pipeline with the adapter newAdapter builds for cfg (nacos.New when nil).
func startPipeline(t testing.TB, cfg nacos.Config, newAdapter func(nacos.Config, registry.Options) (*nacos.Adapter, error)) *bridge {
	t.Helper()
	if newAdapter == nil {
		newAdapter = nacos.New
	}
	b := &bridge{rec: nacostest.NewRecordSink()}
	conf := &config.Config{Registries: []config.Registry{{Name: "nacos", Type: "nacos", Config: &cfg}}}
	conf.Translate.Registries = conf.TranslateRegistries()
	p, err := pipeline.New(conf, pipeline.Options{
		NewAdapter: func(r config.Registry, opts registry.Options) (registry.Adapter, error) {
			opts.Logger = nacostest.Logger(t).With("registry", r.Name)
			a, err := newAdapter(*r.Config.(*nacos.Config), opts)
			if err != nil {
				return nil, err
			}
			b.a = a
			return recorded{a, b.rec}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.p = p
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
	b.ads = startADS(t, l.Addr().String())
	return b
}

// recorded runs the adapter on the pipeline's sink and a RecordSink (which gets copies).
type recorded struct {
	a   *nacos.Adapter
	rec *nacostest.RecordSink
}

func (r recorded) Run(ctx context.Context, sink registry.Sink) error {
	return r.a.Run(ctx, nacostest.TeeSink{r.rec, sink})
}

func (r recorded) Describe() map[string]any { return r.a.Describe() }

// status is the adapter's status as /debug/registries shows it.
func (b *bridge) status(t testing.TB) (st struct {
	Reachable  bool   `json:"reachable"`
	Recovering bool   `json:"recovering"`
	LastError  string `json:"lastError"`
}) {
	t.Helper()
	raw, err := json.Marshal(b.p.Registries())
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Adapters map[string]struct {
			Status json.RawMessage `json:"status"`
		} `json:"adapters"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(page.Adapters["nacos"].Status, &st); err != nil {
		t.Fatalf("status of the nacos adapter in %s: %v", raw, err)
	}
	return st
}

// metric returns the value of the pipeline's gauge or counter name (for the registry "nacos").
func (b *bridge) metric(t testing.TB, name string) float64 {
	t.Helper()
	fams, err := b.p.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "registry" && l.GetValue() == "nacos" {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{registry=\"nacos\"}", name)
	return 0
}

// adsClient keeps the ServiceEntries an MCP server sends, by host, and ACKs every response.
type adsClient struct {
	mu      sync.Mutex
	entries map[string]*networking.ServiceEntry // by first host
	updated map[string]time.Time                // when an entry last changed
	err     error
}

func startADS(t testing.TB, addr string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{entries: map[string]*networking.ServiceEntry{}, updated: map[string]time.Time{}}
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: serviceEntryType}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.setErr(err)
				return
			}
			c.apply(resp)
			if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: serviceEntryType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
	})
	return c
}

func (c *adsClient) apply(resp *discovery.DiscoveryResponse) {
	now := time.Now()
	next := map[string]*networking.ServiceEntry{}
	for _, a := range resp.Resources {
		var env mcpapi.Resource
		if err := a.UnmarshalTo(&env); err != nil {
			c.setErr(fmt.Errorf("MCP envelope: %w", err))
			return
		}
		var se networking.ServiceEntry
		if err := env.Body.UnmarshalTo(&se); err != nil {
			c.setErr(fmt.Errorf("ServiceEntry body of %s: %w", env.Metadata.GetName(), err))
			return
		}
		if len(se.Hosts) > 0 {
			next[se.Hosts[0]] = &se
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, se := range next {
		if old, ok := c.entries[h]; !ok || old.String() != se.String() {
			c.updated[h] = now
		}
	}
	for h := range c.entries {
		if _, ok := next[h]; !ok {
			c.updated[h] = now
		}
	}
	c.entries = next
}

func (c *adsClient) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// entry returns the ServiceEntry of a host and when it last changed.
func (c *adsClient) entry(host string) (*networking.ServiceEntry, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[host], c.updated[host], c.err
}

// count is the number of ServiceEntries held.
func (c *adsClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// endpoints renders the endpoints of a host's ServiceEntry as "address:port/weight" sorted, or
// "absent".
func (c *adsClient) endpoints(host string) string {
	se, _, _ := c.entry(host)
	if se == nil {
		return "absent"
	}
	var out []string
	for _, e := range se.Endpoints {
		var ports []string
		for name, p := range e.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", name, p))
		}
		out = append(out, fmt.Sprintf("%s[%s]w%d", e.Address, strings.Join(ports, ","), e.Weight))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

// waitEndpoints waits until a host's endpoints render as want.
func (c *adsClient) waitEndpoints(t testing.TB, timeout time.Duration, host, want string) {
	t.Helper()
	nacostest.WaitFor(t, timeout, "MCP client to see "+host+" = "+want, func() error {
		if got := c.endpoints(host); got != want {
			_, _, err := c.entry(host)
			return fmt.Errorf("have %s (stream error: %v)", got, err)
		}
		return nil
	})
}

// host is the name the Nacos type's default templates give an application of the public
// namespace's default group.
func host(name string) string { return name + ".default-group.public.nacos" }
