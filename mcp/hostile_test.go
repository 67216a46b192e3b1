package mcp

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// heapInUse is the Go heap in use after a full collection (runtime.MemStats.HeapInuse): what the
// server holds, without garbage not yet collected.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// hostileHeapBound is how much the Go heap may grow while the hostile clients below are
// connected, on top of the estate and one well-behaved client. Measured: about 7 MiB.
const hostileHeapBound = 32 << 20

// TestHostileClients runs a server with the default limits and a 10k-service estate (10
// endpoints each, a ~10 MB response) against every hostile client at once: huge type URLs,
// huge nonces, a NACK flood, a client that never ACKs, one that never reads, and 1,000 streams
// from one peer. A well-behaved client on another peer must still receive every change within a
// second, a new client must still get the whole state, and the Go heap must stay within
// hostileHeapBound of where it started.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10k-service estate")
	}
	srv := startServer(t, Options{}, nil)
	estate := make([]*Resource, 10_000)
	for i := range estate {
		estate[i] = serviceEntry(fmt.Sprintf("ns-%02d", i/1000), fmt.Sprintf("svc-%05d", i), 10, 0)
	}
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: estate})
	// The well-behaved client ACKs every response and does not decode the resources inside, so
	// the time measured is the server's, not the test client's decoding of 10 MB.
	good := startAdscFrom(t, srv.addr, "127.0.0.6", seV1, true)
	good.decode = false
	good.nextFor(seV1, 10*time.Second)
	change := func(gen int) {
		t.Helper()
		estate[gen] = serviceEntry("ns-00", fmt.Sprintf("svc-%05d", gen), 10, gen)
		start := time.Now()
		srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: estate})
		r := good.nextFor(seV1, time.Second)
		if r.GetVersionInfo() != srv.snapshotFor(istio.CollectionServiceEntry).version {
			t.Fatalf("change %d: got version %s, want %s", gen, r.GetVersionInfo(), srv.snapshotFor(istio.CollectionServiceEntry).version)
		}
		t.Logf("change %d reached the good client in %v", gen, time.Since(start).Round(time.Millisecond))
	}
	change(1) // before the attack, for comparison
	base := heapInUse()

	hostile := dial(t, srv.addr) // 127.0.0.1; the good client is on the same peer, admitted first
	var wg sync.WaitGroup
	attack := func(name string, f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
		t.Logf("attack: %s", name)
	}
	attack("huge type URLs", func() {
		for range 10 {
			s := openSotw(t, hostile)
			_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: strings.Repeat("t", 3<<20)})
			endStatus(t, s, 10*time.Second)
		}
	})
	attack("huge nonces", func() {
		s := openSotw(t, hostile)
		for range 20 {
			if s.Send(&discovery.DiscoveryRequest{TypeUrl: seV1, ResponseNonce: strings.Repeat("n", 3<<20)}) != nil {
				return
			}
		}
	})
	attack("NACK flood", func() {
		a := startAdscFrom(t, srv.addr, "127.0.0.3", weV1, false)
		r := a.nextFor(weV1, 10*time.Second)
		for range 100 {
			a.send(&discovery.DiscoveryRequest{TypeUrl: weV1, ResponseNonce: r.GetNonce(), Node: &core.Node{Id: istiodNodeID},
				ErrorDetail: &rpcstatus.Status{Code: 3, Message: strings.Repeat("e", 1<<20)}})
		}
	})
	attack("never ACKs", func() {
		// Reads and drops every response, so that what it costs the test process is not counted.
		s := openSotw(t, dialFrom(t, srv.addr, "127.0.0.4"))
		_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: istiodNode()})
		go func() {
			for s.RecvMsg(&discovery.DiscoveryResponse{}) == nil {
			}
		}()
	})
	attack("never reads", func() {
		s := openSotw(t, dialFrom(t, srv.addr, "127.0.0.5", grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
		_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: seV1, Node: istiodNode()})
	})
	attack("1,000 streams from one peer", func() {
		for range 1000 {
			s := openSotw(t, hostile)
			_ = s.Send(&discovery.DiscoveryRequest{TypeUrl: weV1, Node: istiodNode()})
		}
	})
	wg.Wait()

	// Every change reaches the well-behaved client within a second while all of that is open.
	for gen := 2; gen <= 6; gen++ {
		change(gen)
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("Go heap in use (after GC): %d MiB with the estate and one client, grown by %.1f MiB with the hostile clients connected",
		base>>20, float64(grown)/(1<<20))
	if grown > hostileHeapBound {
		t.Fatalf("the hostile clients grew the Go heap by %d MiB, want under %d MiB", grown>>20, hostileHeapBound>>20)
	}
	if got := testutil.ToFloat64(srv.m.limitRejections.WithLabelValues(limitStreamsPeer)); got < 900 {
		t.Errorf("streams_per_peer rejections = %v, want most of the 1,000 streams", got)
	}
	page := srv.ClientsPage(0, 50)
	if page.Total > DefaultMaxStreamsPerPeer+4 {
		t.Errorf("%d streams open, want at most %d from 127.0.0.1 and 4 from other peers", page.Total, DefaultMaxStreamsPerPeer)
	}
	// Still ready: a new client on another peer gets the whole estate.
	fresh := startAdscFrom(t, srv.addr, "127.0.0.2", seV1, true)
	fresh.nextFor(seV1, 5*time.Second)
	if n := len(fresh.names(seV1)); n != len(estate) {
		t.Fatalf("a new client got %d resources, want %d", n, len(estate))
	}
}

// startAdscFrom is startAdsc from another loopback address (another peer).
func startAdscFrom(t testing.TB, addr, local, typeURL string, ack bool) *adsc {
	t.Helper()
	s := openSotw(t, dialFrom(t, addr, local))
	a := newAdsc(t, s, ack)
	if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL, Node: istiodNode()}); err != nil {
		t.Fatal(err)
	}
	go a.recv()
	return a
}
