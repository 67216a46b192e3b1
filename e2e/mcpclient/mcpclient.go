// Package mcpclient runs a real bridge pipeline with its MCP server on a loopback port and
// subscribes to it as Istiod's MCP client does: one ADS stream, state of the world, every
// response ACKed. It keeps the ServiceEntries by host (and WorkloadEntries by address when
// subscribed to them) with the time each last changed, taken when the response carrying the
// change arrived, so tests measure arrival rather than their own polling. Tests only.
package mcpclient

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// The kinds a Client can subscribe to.
const (
	ServiceEntries  = "ServiceEntry"
	WorkloadEntries = "WorkloadEntry"
)

// istiodMinor is the Istio version whose type URLs the client asks with (>= 1.24: v1).
const istiodMinor = 31

// Serve runs p with its MCP server on a loopback port until the test ends and connects a
// Client subscribed to ServiceEntries.
func Serve(t testing.TB, p *pipeline.Pipeline) *Client {
	t.Helper()
	return Connect(t, Start(t, p))
}

// Start runs p (as `mcp-bridge serve` does: p.Run and its MCP server on a gRPC server with the
// bridge's server options) on a loopback port until the test ends, and returns the address.
func Start(t testing.TB, p *pipeline.Pipeline) string {
	t.Helper()
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
	return l.Addr().String()
}

// StartShards is Start for a pipeline with mcp.shards: every shard's server on its own loopback
// listener and gRPC server, as `mcp-bridge serve` runs them; it returns the addresses, shard 0
// first.
func StartShards(t testing.TB, p *pipeline.Pipeline) []string {
	t.Helper()
	var addrs []string
	var grpcs []*grpc.Server
	for _, srv := range p.Servers() {
		g := grpc.NewServer(mcp.ServerOptions()...)
		srv.Register(g)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = g.Serve(l) }()
		addrs, grpcs = append(addrs, l.Addr().String()), append(grpcs, g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		for i, srv := range p.Servers() {
			srv.Close()
			grpcs[i].Stop()
		}
	})
	return addrs
}

// Client holds the resources of the latest response of each subscribed kind.
type Client struct {
	mu              sync.Mutex
	entries         map[string]*networking.ServiceEntry  // by each of its hosts
	entryCount      int                                  // ServiceEntries in the latest response
	entryChanged    map[string]time.Time                 // by host
	workloads       map[string]*networking.WorkloadEntry // by resource name
	workloadChanged map[string]time.Time                 // by address
	err             error                                // why the stream ended, or a resource did not decode
	changed         chan struct{}                        // capacity 1: a response was applied or the stream ended
}

// Connect subscribes to ServiceEntries at the MCP server at addr until the test ends.
func Connect(t testing.TB, addr string) *Client {
	t.Helper()
	return Subscribe(t, addr, ServiceEntries)
}

// Subscribe subscribes to each of kinds (ServiceEntries, WorkloadEntries) on one stream to the
// MCP server at addr until the test ends.
func Subscribe(t testing.TB, addr string, kinds ...string) *Client {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{entries: map[string]*networking.ServiceEntry{}, entryChanged: map[string]time.Time{},
		workloads: map[string]*networking.WorkloadEntry{}, workloadChanged: map[string]time.Time{},
		changed: make(chan struct{}, 1)}
	types := map[string]string{} // type URL -> kind
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	for _, kind := range kinds {
		u, err := typeURL(kind)
		if err != nil {
			t.Fatal(err)
		}
		types[u] = kind
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: u}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err == nil {
				err = c.apply(types[resp.GetTypeUrl()], resp)
			}
			if err == nil {
				err = stream.Send(&discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
			}
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				c.signal()
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cc.Close()
	})
	return c
}

// typeURL is the type URL Istiod subscribes to kind with, from istio/kinds.go's table.
func typeURL(kind string) (string, error) {
	for _, k := range istio.PilotKinds() {
		if k.Name == kind && (kind == ServiceEntries || kind == WorkloadEntries) {
			return k.TypeURL(istiodMinor), nil
		}
	}
	return "", fmt.Errorf("mcpclient: cannot subscribe to %q: want %s or %s", kind, ServiceEntries, WorkloadEntries)
}

// apply takes a response of kind (the whole collection: MCP over xDS is state of the world).
func (c *Client) apply(kind string, resp *discovery.DiscoveryResponse) error {
	at := time.Now()
	entries := map[string]*networking.ServiceEntry{}
	workloads := map[string]*networking.WorkloadEntry{}
	for _, a := range resp.GetResources() {
		var env mcpapi.Resource
		if err := a.UnmarshalTo(&env); err != nil {
			return fmt.Errorf("MCP envelope: %w", err)
		}
		switch kind {
		case ServiceEntries:
			var se networking.ServiceEntry
			if err := env.GetBody().UnmarshalTo(&se); err != nil {
				return fmt.Errorf("ServiceEntry body of %s: %w", env.GetMetadata().GetName(), err)
			}
			for _, h := range se.GetHosts() {
				entries[h] = &se
			}
		case WorkloadEntries:
			var we networking.WorkloadEntry
			if err := env.GetBody().UnmarshalTo(&we); err != nil {
				return fmt.Errorf("WorkloadEntry body of %s: %w", env.GetMetadata().GetName(), err)
			}
			workloads[env.GetMetadata().GetName()] = &we
		default:
			return fmt.Errorf("a response of type %q, which was not subscribed to", resp.GetTypeUrl())
		}
	}
	c.mu.Lock()
	switch kind {
	case ServiceEntries:
		markChanged(c.entryChanged, at, c.entries, entries, func(h string, _ *networking.ServiceEntry) string { return h })
		c.entries, c.entryCount = entries, len(resp.GetResources())
	case WorkloadEntries:
		markChanged(c.workloadChanged, at, c.workloads, workloads, func(_ string, we *networking.WorkloadEntry) string { return we.GetAddress() })
		c.workloads = workloads
	}
	c.mu.Unlock()
	c.signal()
	return nil
}

// markChanged sets changed[key] = at for the key of every resource that is new, different or
// gone from old to next.
func markChanged[M proto.Message](changed map[string]time.Time, at time.Time, old, next map[string]M, key func(string, M) string) {
	for k, m := range next {
		if o, ok := old[k]; !ok || !proto.Equal(o, m) {
			changed[key(k, m)] = at
		}
	}
	for k, o := range old {
		if _, ok := next[k]; !ok {
			changed[key(k, o)] = at
		}
	}
}

func (c *Client) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Entry returns the ServiceEntry serving host, or nil.
func (c *Client) Entry(host string) *networking.ServiceEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[host]
}

// Changed returns when the response arrived that last changed host's ServiceEntry (added,
// changed or removed it); zero if none has.
func (c *Client) Changed(host string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entryChanged[host]
}

// Len is the number of ServiceEntries held.
func (c *Client) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entryCount
}

// Endpoint returns the endpoint at address of host's ServiceEntry, or nil.
func (c *Client) Endpoint(host, address string) *networking.WorkloadEntry {
	for _, e := range c.Entry(host).GetEndpoints() {
		if e.GetAddress() == address {
			return e
		}
	}
	return nil
}

// Workload returns a WorkloadEntry at address, or nil (subscribed to WorkloadEntries only).
func (c *Client) Workload(address string) *networking.WorkloadEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, we := range c.workloads {
		if we.GetAddress() == address {
			return we
		}
	}
	return nil
}

// WorkloadChanged returns when the response arrived that last changed a WorkloadEntry at
// address; zero if none has.
func (c *Client) WorkloadChanged(address string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workloadChanged[address]
}

// Err returns why the stream ended (or a response could not be decoded), nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WaitFor waits until cond holds, checking it after each response, and returns when it first
// held. It fails the test after timeout with cond's last error, or as soon as the stream has
// ended, since no response can then make cond hold.
func (c *Client) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(*Client) error) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		err := cond(c)
		if err == nil {
			return time.Now()
		}
		if serr := c.Err(); serr != nil {
			t.Fatalf("waiting for the MCP client to see %s: the stream ended: %v (last: %v)", what, serr, err)
		}
		select {
		case <-c.changed:
		case <-time.After(50 * time.Millisecond): // for conds on more than the client
		case <-deadline:
			t.Fatalf("timed out after %v waiting for the MCP client to see %s: %v", timeout, what, err)
		}
	}
}
