// Package traffic sends real gRPC traffic through Istio's proxyless xDS support: plain gRPC
// backends on 127.0.0.x addresses that answer with their identity, and a proxyless client that
// resolves xds:/// targets through Istiod and counts which backend answered.
package traffic

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Backend is a gRPC server implementing grpc.testing.TestService whose UnaryCall answers with its
// ID (its ip:port) as server_id.
type Backend struct {
	// Addr is ip:port; it is also the ID the backend answers with.
	Addr string
	IP   string
	Port int

	hits   atomic.Int64
	server *grpc.Server
}

// Hits returns how many UnaryCalls the backend has answered.
func (b *Backend) Hits() int64 { return b.hits.Load() }

// StartBackends starts one backend on each of ips (loopback addresses such as "127.0.0.2"; all of
// 127.0.0.0/8 is loopback on Linux), all on one free port, as a registry would list several
// instances of a service on the same port. They stop when the test ends.
func StartBackends(t testing.TB, ips ...string) []*Backend {
	t.Helper()
	if len(ips) == 0 {
		t.Fatalf("traffic: StartBackends needs at least one IP")
	}
	var listeners []net.Listener
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if listeners, err = listenAll(ips); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("traffic: no port free on all of %v: %v", ips, err)
	}
	backends := make([]*Backend, len(ips))
	for i, l := range listeners {
		b := &Backend{Addr: l.Addr().String(), IP: ips[i], Port: l.Addr().(*net.TCPAddr).Port, server: grpc.NewServer()}
		testgrpc.RegisterTestServiceServer(b.server, &testService{b: b})
		go func() { _ = b.server.Serve(l) }()
		t.Cleanup(b.server.Stop)
		backends[i] = b
	}
	return backends
}

// listenAll listens on a port free on the first IP, then on that port on every other IP.
func listenAll(ips []string) ([]net.Listener, error) {
	first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
	if err != nil {
		return nil, err
	}
	ls := []net.Listener{first}
	port := strconv.Itoa(first.Addr().(*net.TCPAddr).Port)
	for _, ip := range ips[1:] {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listening on %s:%s: %w", ip, port, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	b *Backend
}

func (s *testService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.b.hits.Add(1)
	return &testgrpc.SimpleResponse{ServerId: s.b.Addr, Hostname: s.b.IP}, nil
}
