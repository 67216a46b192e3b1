// Package mcptest serves a real bridge pipeline on a loopback MCP listener and subscribes to it
// as Istiod's MCP client does, for tests that follow registry changes through the whole bridge.
// Tests only; the pipeline tests of other registries keep their own clients for now and can
// move here.
package mcptest

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
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// Serve runs p (as `mcp-bridge serve` does) with its MCP server on a loopback port until the
// test ends, and returns the port's address.
func Serve(t testing.TB, p *pipeline.Pipeline) string {
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

// serviceEntryType is the collection Istiod >= 1.24 asks an MCP server for.
const serviceEntryType = "networking.istio.io/v1/ServiceEntry"

// MCPClient subscribes to ServiceEntries as Istiod's MCP client does, ACKs every response and
// keeps the entries by first host, with the time each last changed (when the response carrying
// the change arrived, so a test measures arrival rather than its own polling).
type MCPClient struct {
	mu      sync.Mutex
	entries map[string]*networking.ServiceEntry
	changed map[string]time.Time
	err     error
}

// DialMCP opens the subscription to the MCP server at addr until the test ends.
func DialMCP(t testing.TB, addr string) *MCPClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &MCPClient{entries: map[string]*networking.ServiceEntry{}, changed: map[string]time.Time{}}
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: serviceEntryType}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err == nil {
				err = c.apply(resp)
			}
			if err == nil {
				err = stream.Send(&discovery.DiscoveryRequest{TypeUrl: serviceEntryType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
			}
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return c
}

// apply takes a response (the whole collection: MCP over xDS is state of the world).
func (c *MCPClient) apply(resp *discovery.DiscoveryResponse) error {
	at := time.Now()
	next := make(map[string]*networking.ServiceEntry, len(resp.Resources))
	for _, a := range resp.Resources {
		var env mcpapi.Resource
		if err := a.UnmarshalTo(&env); err != nil {
			return fmt.Errorf("MCP envelope: %w", err)
		}
		var se networking.ServiceEntry
		if err := env.Body.UnmarshalTo(&se); err != nil {
			return fmt.Errorf("ServiceEntry body of %s: %w", env.Metadata.GetName(), err)
		}
		if len(se.Hosts) > 0 {
			next[se.Hosts[0]] = &se
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, se := range next {
		if old, ok := c.entries[h]; !ok || old.String() != se.String() {
			c.changed[h] = at
		}
	}
	for h := range c.entries {
		if _, ok := next[h]; !ok {
			c.changed[h] = at
		}
	}
	c.entries = next
	return nil
}

// Entry returns a host's ServiceEntry (nil: none), when it last changed, and the stream's
// error if it ended.
func (c *MCPClient) Entry(host string) (*networking.ServiceEntry, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[host], c.changed[host], c.err
}

// Len is the number of ServiceEntries held.
func (c *MCPClient) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Endpoint returns the endpoint at address of a host's ServiceEntry, or nil.
func (c *MCPClient) Endpoint(host, address string) *networking.WorkloadEntry {
	se, _, _ := c.Entry(host)
	for _, e := range se.GetEndpoints() {
		if e.Address == address {
			return e
		}
	}
	return nil
}
