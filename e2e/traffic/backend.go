// Package traffic sends real gRPC traffic through Istio's proxyless xDS support: plain gRPC
// backends on 127.0.0.x addresses that answer with their identity, and a proxyless client that
// resolves xds:/// targets through Istiod and counts which backend answered.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Backend is a gRPC server implementing grpc.testing.TestService whose UnaryCall answers with its
// ID (its ip:port) as server_id.
type Backend struct {
	// Addr is ip:port; it is also the ID the backend answers with.
	Addr string
	IP   string
	Port int

	hits    atomic.Int64
	server  *grpc.Server
	forward atomic.Pointer[forward]
}

// forward is a middle hop's next call.
type forward struct {
	client    *Client
	target    string
	propagate []string
}

// Forward makes the backend a middle hop of a call chain: each UnaryCall it answers first makes
// one call through client (a proxyless xdsclient, so the hop is routed by Istio like the first)
// to target, copying the incoming request headers named in propagate onto it, as an application
// propagating x-lane must; it answers with its own ID followed by the next hop's answer,
// "a > b > c", so the caller sees the whole path. A failed next hop fails the call
// (UNAVAILABLE, naming the hop).
func (b *Backend) Forward(client *Client, target string, propagate ...string) {
	b.forward.Store(&forward{client: client, target: target, propagate: propagate})
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
		b := &Backend{Addr: l.Addr().String(), IP: ips[i], Port: l.Addr().(*net.TCPAddr).Port}
		svc := &testService{b: b}
		b.server = grpc.NewServer(grpc.UnknownServiceHandler(svc.anyMethod))
		testgrpc.RegisterTestServiceServer(b.server, svc)
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

func (s *testService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.b.hits.Add(1)
	id := s.b.Addr
	if f := s.b.forward.Load(); f != nil {
		next, err := f.call(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%s: next hop %s: %v", s.b.Addr, f.target, err)
		}
		id += " > " + next
	}
	return &testgrpc.SimpleResponse{ServerId: id, Hostname: s.b.IP}, nil
}

// anyMethod answers a unary call to any other service (a Dubbo Triple path such as
// /org.apache.dubbo.demo.GreeterService/sayHello, for method-matching routes) as UnaryCall does:
// it reads a SimpleRequest and answers with the backend's ID.
func (s *testService) anyMethod(_ any, stream grpc.ServerStream) error {
	var req testgrpc.SimpleRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	resp, err := s.UnaryCall(stream.Context(), &req)
	if err != nil {
		return err
	}
	return stream.SendMsg(resp)
}

// call makes the next hop's call and returns who answered it.
func (f *forward) call(ctx context.Context) (string, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	md := map[string]string{}
	for _, h := range f.propagate {
		if v := in.Get(h); len(v) > 0 {
			md[h] = v[0]
		}
	}
	res, err := f.client.Do(ctx, Call{Target: f.target, N: 1, Metadata: md, Timeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	if res.Failed() > 0 {
		return "", errors.New(describeErrors(res.Errors))
	}
	for id := range res.Counts {
		return id, nil
	}
	return "", errors.New("no answer")
}
