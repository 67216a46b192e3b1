// Package hostile is the client side of the hostile-MCP-client tests (issue 9): clients that
// misbehave in every way an unauthenticated MCP client can — huge type URLs, huge nonces, a NACK
// flood, a client that never ACKs, one that never reads, 1,000 streams from one peer. The mcp
// package runs them against an in-process server (measuring the Go heap), the e2e tests against
// the real bridge binary (measuring its RSS); both use this package so that they attack alike.
//
// The attacks dial from fixed loopback addresses, so the server sees several peers: SharedPeer
// (huge type URLs, huge nonces and the 1,000 streams, so the per-peer stream limit is what
// refuses most of them) and one address each for the NACK flood, the client that never ACKs and
// the one that never reads. A well-behaved client the test runs alongside should dial from
// another address (127.0.0.2, 127.0.0.6, ...), as Istiod would be another peer.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The peers the attacks dial from.
const (
	SharedPeer = "127.0.0.1"
	NackPeer   = "127.0.0.3"
	NoAckPeer  = "127.0.0.4"
	NoReadPeer = "127.0.0.5"
)

// The attacks' sizes. Each request stays under the default receive limit (4 MiB), so the server
// has to read it and refuse or truncate what is inside, rather than gRPC refusing it unread.
const (
	HugeTypeURLStreams = 10
	HugeFieldBytes     = 3 << 20 // a type URL or nonce
	HugeNonces         = 20
	Nacks              = 100
	NackDetailBytes    = 1 << 20
	PeerStreams        = 1000
)

// Options says what the attacks ask for.
type Options struct {
	// Addr is the MCP server's host:port.
	Addr string
	// Node is what the clients identify as (Istiod's node, so that nothing refuses them for it).
	Node *core.Node
	// BigTypeURL is the collection with the large response (ServiceEntries): the clients that
	// never ACK or never read subscribe to it.
	BigTypeURL string
	// SmallTypeURL is another collection (WorkloadEntries) the NACK flood and the 1,000 streams
	// subscribe to.
	SmallTypeURL string
	// Timeout bounds each wait for the server: the NACK flood's first response and the end of
	// each stream that sent a huge type URL (default 10 s).
	Timeout time.Duration
}

// Clients are the hostile clients once their bursts are sent; the ones that hold streams open
// (never ACKs, never reads, the NACK flood's stream, the 1,000 streams) keep them until Close.
type Clients struct {
	cancel context.CancelFunc
	conns  []*grpc.ClientConn
}

// Close ends every stream and connection of the attacks.
func (c *Clients) Close() {
	c.cancel()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// Run starts every attack at once and returns when each has sent its burst. The error says which
// attack the server did not answer as it must (e.g. a stream with a huge type URL left open);
// the caller judges the server's health and memory. Close the Clients in either case.
func Run(opts Options) (*Clients, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Clients{cancel: cancel}
	dial := func(local string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
		cc, err := Dial(opts.Addr, local, extra...)
		if err == nil {
			c.conns = append(c.conns, cc)
		}
		return cc, err
	}
	shared, err1 := dial(SharedPeer)
	nack, err2 := dial(NackPeer)
	noAck, err3 := dial(NoAckPeer)
	// 64 KiB windows and no Recv: the first large response cannot be delivered.
	noRead, err4 := dial(NoReadPeer, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return c, err
	}
	a := attacker{ctx: ctx, opts: opts}
	attacks := []struct {
		name string
		run  func() error
	}{
		{"huge type URLs", func() error { return a.hugeTypeURLs(shared) }},
		{"huge nonces", func() error { return a.hugeNonces(shared) }},
		{"NACK flood", func() error { return a.nackFlood(nack) }},
		{"never ACKs", func() error { return a.neverAcks(noAck) }},
		{"never reads", func() error { return a.neverReads(noRead) }},
		{"1,000 streams from one peer", func() error { return a.peerStreams(shared) }},
	}
	errs := make([]error, len(attacks))
	var wg sync.WaitGroup
	for i, at := range attacks {
		wg.Go(func() {
			if err := at.run(); err != nil {
				errs[i] = fmt.Errorf("attack %q: %w", at.name, err)
			}
		})
	}
	wg.Wait()
	return c, errors.Join(errs...)
}

// Dial connects to addr from the loopback address local, so one test process can be several peers.
func Dial(addr, local string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return d.DialContext(ctx, "tcp", a)
		}),
	}, extra...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, local, err)
	}
	return cc, nil
}

type attacker struct {
	ctx  context.Context
	opts Options
}

func (a attacker) open(cc *grpc.ClientConn) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(a.ctx)
	if err != nil {
		return nil, fmt.Errorf("open an ADS stream: %w", err)
	}
	return s, nil
}

// subscribe opens a stream and sends its first request, for typeURL, as Istiod would.
func (a attacker) subscribe(cc *grpc.ClientConn, typeURL string) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, error) {
	s, err := a.open(cc)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL, Node: a.opts.Node}); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", typeURL, err)
	}
	return s, nil
}

// drain reads and drops every response, so that what they cost the attacking process is not
// counted against the server.
func drain(s grpc.ClientStream) {
	for s.RecvMsg(&discovery.DiscoveryResponse{}) == nil {
	}
}

// hugeTypeURLs sends one request with a 3 MiB type URL on each of ten streams; the server must
// end every one of them (the type URL limit, or the per-peer stream limit).
func (a attacker) hugeTypeURLs(cc *grpc.ClientConn) error {
	url := strings.Repeat("t", HugeFieldBytes)
	for range HugeTypeURLStreams {
		s, err := a.open(cc)
		if err != nil {
			return err
		}
		_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: url})
		ended := make(chan struct{})
		go func() { drain(s); close(ended) }()
		select {
		case <-ended:
		case <-time.After(a.opts.Timeout):
			return fmt.Errorf("a stream that sent a %d-byte type URL is still open after %v", len(url), a.opts.Timeout)
		}
	}
	return nil
}

// hugeNonces sends twenty 3 MiB response nonces on one stream, until the server ends it.
func (a attacker) hugeNonces(cc *grpc.ClientConn) error {
	s, err := a.open(cc)
	if err != nil {
		return err
	}
	nonce := strings.Repeat("n", HugeFieldBytes)
	for range HugeNonces {
		if s.Send(&discovery.DiscoveryRequest{TypeUrl: a.opts.BigTypeURL, ResponseNonce: nonce}) != nil {
			break // ended by the server: what it should do
		}
	}
	return nil
}

// nackFlood subscribes, then NACKs the first response a hundred times with a 1 MiB error message.
func (a attacker) nackFlood(cc *grpc.ClientConn) error {
	s, err := a.subscribe(cc, a.opts.SmallTypeURL)
	if err != nil {
		return err
	}
	first := make(chan *discovery.DiscoveryResponse, 1)
	go func() {
		r := &discovery.DiscoveryResponse{}
		if s.RecvMsg(r) == nil {
			first <- r
		}
		close(first)
		drain(s)
	}()
	var r *discovery.DiscoveryResponse
	select {
	case r = <-first:
	case <-time.After(a.opts.Timeout):
	}
	if r == nil {
		return fmt.Errorf("no first response for %s within %v", a.opts.SmallTypeURL, a.opts.Timeout)
	}
	msg := strings.Repeat("e", NackDetailBytes)
	for range Nacks {
		if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: a.opts.SmallTypeURL, ResponseNonce: r.GetNonce(),
			Node: &core.Node{Id: a.opts.Node.GetId()}, ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}}); err != nil {
			return fmt.Errorf("send a NACK: %w", err)
		}
	}
	return nil
}

// neverAcks subscribes to the big collection and reads every response without ever ACKing.
func (a attacker) neverAcks(cc *grpc.ClientConn) error {
	s, err := a.subscribe(cc, a.opts.BigTypeURL)
	if err != nil {
		return err
	}
	go drain(s)
	return nil
}

// neverReads subscribes to the big collection and never reads: the server's sends block under
// HTTP/2 flow control until its send timeout ends the stream.
func (a attacker) neverReads(cc *grpc.ClientConn) error {
	_, err := a.subscribe(cc, a.opts.BigTypeURL)
	return err
}

// peerStreams opens 1,000 streams on one connection, each subscribing; the per-peer stream limit
// must refuse all but a few (the caller checks the server's count).
func (a attacker) peerStreams(cc *grpc.ClientConn) error {
	for range PeerStreams {
		s, err := a.open(cc)
		if err != nil {
			return err
		}
		_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: a.opts.SmallTypeURL, Node: a.opts.Node})
	}
	return nil
}
