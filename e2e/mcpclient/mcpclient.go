// Package mcpclient is an MCP client for tests of the whole pipeline: it subscribes to
// ServiceEntries on one ADS stream as Istiod does, ACKs every response, and keeps the entries by
// host. WaitFor reports when a condition first held as a response arrived, so tests can measure
// how long a registry change takes to reach an MCP client.
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
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// ServiceEntryType is the type URL Istiod >= 1.24 subscribes with.
const ServiceEntryType = "networking.istio.io/v1/ServiceEntry"

// Serve runs p with its MCP server on a loopback port until the test ends, and connects a
// Client to it.
func Serve(t testing.TB, p *pipeline.Pipeline) *Client {
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
	return Connect(t, l.Addr().String())
}

// Client holds the ServiceEntries of the latest response.
type Client struct {
	mu      sync.Mutex
	entries map[string]*networking.ServiceEntry // by each of its hosts
	err     error                               // why the stream ended, or a resource did not decode
	changed chan struct{}                       // capacity 1: a response was applied
}

// Connect opens the stream to addr and keeps it until the test ends.
func Connect(t testing.TB, addr string) *Client {
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
	node := &core.Node{Id: "sidecar~10.0.0.1~istiod.istio-system~istio-system.svc.cluster.local"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: ServiceEntryType}); err != nil {
		t.Fatal(err)
	}
	c := &Client{entries: map[string]*networking.ServiceEntry{}, changed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err == nil {
				err = c.apply(resp)
			}
			if err == nil {
				err = stream.Send(&discovery.DiscoveryRequest{TypeUrl: ServiceEntryType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
			}
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
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

func (c *Client) apply(resp *discovery.DiscoveryResponse) error {
	next := map[string]*networking.ServiceEntry{}
	for _, a := range resp.GetResources() {
		var env mcpapi.Resource
		if err := a.UnmarshalTo(&env); err != nil {
			return fmt.Errorf("MCP envelope: %w", err)
		}
		var se networking.ServiceEntry
		if err := env.GetBody().UnmarshalTo(&se); err != nil {
			return fmt.Errorf("ServiceEntry body of %s: %w", env.GetMetadata().GetName(), err)
		}
		for _, h := range se.GetHosts() {
			next[h] = &se
		}
	}
	c.mu.Lock()
	c.entries = next
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// Entry returns the ServiceEntry serving host, or nil.
func (c *Client) Entry(host string) *networking.ServiceEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[host]
}

// WaitFor waits until cond holds, checking it after each response, and returns when it first
// held; it fails the test after timeout with cond's last error.
func (c *Client) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(*Client) error) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		err := cond(c)
		if err == nil {
			return time.Now()
		}
		select {
		case <-c.changed:
		case <-time.After(50 * time.Millisecond): // the stream error, if any, is checked below
		case <-deadline:
			c.mu.Lock()
			serr := c.err
			c.mu.Unlock()
			t.Fatalf("timed out after %v waiting for the MCP client to see %s: %v (stream: %v)", timeout, what, err, serr)
		}
	}
}
