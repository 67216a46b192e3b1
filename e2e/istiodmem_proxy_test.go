package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// primeNoncePrefix marks the filler responses the priming proxy makes up; Istiod's ACKs of them
// are not the bridge's business and are dropped.
const primeNoncePrefix = "prime-"

// primingProxy is a prototype of a proposed MCP server behaviour (see docs/scale.md, "Istiod
// memory under MCP pushes"), placed between Istiod and the real bridge: on each stream it first
// sends Istiod `fillers` empty MeshConfig responses, then forwards both ways. Istiod's pkg/adsc
// keeps the first 100 responses of a connection in a channel nothing reads; filled with empty
// responses, it keeps none of the bridge's. MeshConfig because an empty response of that type
// touches nothing in Istiod (pkg/adsc applies a MeshConfig response only when it holds a
// resource, and MeshConfig is no config-store kind), whereas an empty response of a store kind
// deletes every object of that kind the source had.
type primingProxy struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	upstream   discovery.AggregatedDiscoveryServiceClient
	fillerKind string // type URL suffix of the filler type
	fillers    int
	acks       atomic.Int64 // Istiod's ACKs of fillers, dropped
	Addr       string
}

// startPrimingProxy listens on loopback and forwards to the bridge's MCP address.
func startPrimingProxy(t *testing.T, bridgeMCP string, fillers int) *primingProxy {
	t.Helper()
	conn, err := grpc.NewClient(bridgeMCP, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A full state of the world can be tens of MB; the default 4 MB would cut the stream.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatalf("priming proxy: dialling the bridge %s: %v", bridgeMCP, err)
	}
	t.Cleanup(func() { conn.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &primingProxy{upstream: discovery.NewAggregatedDiscoveryServiceClient(conn), fillerKind: "/MeshConfig",
		fillers: fillers, Addr: l.Addr().String()}
	srv := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(srv, p)
	go srv.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return p
}

func (p *primingProxy) StreamAggregatedResources(down discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	ctx, cancel := context.WithCancel(down.Context())
	defer cancel()
	up, err := p.upstream.StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("priming proxy: opening the bridge's stream: %w", err)
	}
	fillerType := make(chan string, 1)
	errc := make(chan error, 2)
	go func() { // Istiod -> bridge
		found := false
		for {
			req, err := down.Recv()
			if err != nil {
				errc <- err
				return
			}
			if strings.HasPrefix(req.GetResponseNonce(), primeNoncePrefix) {
				p.acks.Add(1)
				continue
			}
			if !found && strings.HasSuffix(req.GetTypeUrl(), p.fillerKind) {
				found = true
				fillerType <- req.GetTypeUrl()
			}
			if err := up.Send(req); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() { // fillers, then bridge -> Istiod; the only sender on down
		select {
		case typ := <-fillerType:
			for i := range p.fillers {
				v := fmt.Sprintf("%s%d", primeNoncePrefix, i)
				if err := down.Send(&discovery.DiscoveryResponse{TypeUrl: typ, VersionInfo: v, Nonce: v}); err != nil {
					errc <- err
					return
				}
			}
		case <-ctx.Done():
			errc <- ctx.Err()
			return
		}
		for {
			resp, err := up.Recv()
			if err != nil {
				errc <- err
				return
			}
			if err := down.Send(resp); err != nil {
				errc <- err
				return
			}
		}
	}()
	err = <-errc
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
