package mcp_test

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
)

// Example shows the wiring cmd/mcp-bridge needs: the gRPC server built with ServerOptions, the
// first Set once the registries have synced, and a shutdown that ends the ADS streams before
// GracefulStop waits for them.
func Example() {
	srv := mcp.NewServer(mcp.Options{Logger: slog.Default(), Metrics: prometheus.NewRegistry()})
	g := grpc.NewServer(mcp.ServerOptions()...)
	srv.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = g.Serve(l) }()

	body, _ := anypb.New(&networking.ServiceEntry{Hosts: []string{"reviews.default-group.public.nacos"}})
	srv.Set(map[string][]*mcp.Resource{
		istio.CollectionServiceEntry: {{Namespace: "public", Name: "reviews", Version: "3f2a9c", Body: body}},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	g.GracefulStop()
}
