package mcp

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/internal/hostile"
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
// from one peer (internal/hostile, which e2e's TestHostileClientsAgainstBridge runs against the
// bridge binary). A well-behaved client on another peer must still receive every change within a
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
	good := startAdscFrom(t, srv.addr, "127.0.0.6", seV1, true, false)
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

	attackers, err := hostile.Run(hostile.Options{Addr: srv.addr, Node: istiodNode(), BigTypeURL: seV1, SmallTypeURL: weV1})
	t.Cleanup(attackers.Close)
	if err != nil {
		t.Fatal(err)
	}

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
	fresh := startAdscFrom(t, srv.addr, "127.0.0.2", seV1, true, true)
	// Generous: this client decodes all 10 MB, which under -race on a loaded machine took over 5s.
	fresh.nextFor(seV1, 30*time.Second)
	if n := len(fresh.names(seV1)); n != len(estate) {
		t.Fatalf("a new client got %d resources, want %d", n, len(estate))
	}
}

// startAdscFrom is startAdsc from another loopback address (another peer); decode false skips
// decoding the resources. decode is set before the reader starts, which reads it.
func startAdscFrom(t testing.TB, addr, local, typeURL string, ack, decode bool) *adsc {
	t.Helper()
	s := openSotw(t, dialFrom(t, addr, local))
	a := newAdsc(t, s, ack)
	a.decode = decode
	if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL, Node: istiodNode()}); err != nil {
		t.Fatal(err)
	}
	go a.recv()
	return a
}
