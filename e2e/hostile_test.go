package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/internal/benchestate"
	"github.com/mcp-bridge/mcp-bridge/internal/hostile"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// The hostile-client test's estate, bounds and pace.
const (
	hostileServices = 10_000
	hostilePer      = 10 // instances per service: 100k endpoints, a ~20 MB ServiceEntry response
	// hostileFiles: the estate is split over several file registries, and the service the test
	// changes is in a small file of its own (hostileChangedFile services), so that a change
	// re-parses a few KB: re-parsing a tenth of the estate (2 MB of YAML) took 0.5 to 2 s on a
	// loaded 2-core machine, the injection's cost and not the bridge's.
	hostileFiles       = 10
	hostileChangedFile = 10
	// hostileChangeBound is issue 9's bound: a file change reaches a well-behaved MCP client
	// within a second of the write while the hostile clients are connected. Measured: 230-480 ms
	// (the file registry's 100 ms settle delay, the bridge's 100 ms debounce, building and
	// sending the 20 MB response).
	hostileChangeBound = time.Second
	// hostileRSSBound is how far the bridge's peak RSS under attack may rise above its peak
	// before (10k services served to one client, one change). Measured: -31 to +128 MiB around a
	// 560-770 MiB baseline; the in-process test shows the live heap grows by ~6 MiB, so the
	// rest is garbage the Go collector has not yet reclaimed (the attacks send ~190 MiB of
	// requests), which the bound leaves room for.
	hostileRSSBound = 256 << 20
	hostileChanges  = 5 // changes while the attack is on (plus one before it, for comparison)
	// hostileGoodPeer is the well-behaved client's loopback address: not one of the attackers'.
	hostileGoodPeer = "127.0.0.6"
)

// hostileTypeURL is the type URL the e2e Istiod (1.31) subscribes to a kind with.
func hostileTypeURL(kind string) string {
	for _, k := range istio.PilotKinds() {
		if k.Name == kind {
			return k.TypeURL(31)
		}
	}
	panic("no Istio kind " + kind) // a constant argument: a defect of this file
}

// TestHostileClientsAgainstBridge is issue 9's hostile-client test against the bridge binary:
// a file-registry estate of 10k services (100k instances), and every attack of internal/hostile
// at once on its MCP port — huge type URLs, huge nonces, a NACK flood, a client that never ACKs,
// one that never reads, 1,000 streams from one peer. Meanwhile a well-behaved SotW client
// subscribed to ServiceEntries as Istiod is must see each file change (one instance's address)
// within hostileChangeBound of the write, /readyz must answer 200 at every poll, the bridge's
// RSS (sampled every 50 ms) must stay within hostileRSSBound of its baseline, the per-peer
// stream limit must have refused the flood, and the 100 MiB of NACK text must not reach the log.
func TestHostileClientsAgainstBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("10k-service estate")
	}
	t.Parallel()
	started := time.Now()
	estate := benchestate.Estate(hostileServices, hostilePer, benchestate.Options{})
	dir := t.TempDir()
	files := make([][]*registry.Service, hostileFiles)
	files[0] = estate[:hostileChangedFile]
	for i, s := range estate[hostileChangedFile:] {
		f := 1 + i%(hostileFiles-1)
		files[f] = append(files[f], s)
	}
	var cfg strings.Builder
	cfg.WriteString("registries:\n")
	paths := make([]string, hostileFiles)
	for f := range files {
		name := fmt.Sprintf("hostile-%02d", f)
		paths[f] = writeFile(t, dir, name+".yaml", servicesFile(files[f]))
		fmt.Fprintf(&cfg, "  - {name: %s, type: file, namespace: hostile, file: {path: %q}}\n", name, paths[f])
	}
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage), Config: cfg.String(), ReadyTimeout: 90 * time.Second})
	t.Logf("measure: bridge ready with %d services x %d instances in %v", hostileServices, hostilePer, time.Since(started).Round(time.Millisecond))

	// RSS is sampled every 50 ms from here on. Its baseline is the peak before the attack (the
	// first full response to one client and one change), so that both figures are peaks of the
	// same work and the Go collector's timing does not count as growth.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var watchers sync.WaitGroup
	var peak atomic.Int64
	watchers.Go(func() {
		for tick := time.NewTicker(50 * time.Millisecond); ; {
			if rss, err := servers.RSS(b.PID()); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	se := hostileTypeURL("ServiceEntry")
	good := watchServiceEntries(t, b.MCPAddr, se)
	if r := good.next(t, 60*time.Second); len(r.resp.GetResources()) != hostileServices {
		t.Fatalf("first ServiceEntry response has %d resources, want %d", len(r.resp.GetResources()), hostileServices)
	}
	// Each change moves instance 0 of service 0 (in file 0) to a new address.
	changed := &files[0][0].Instances[0]
	change := func(gen int) time.Duration {
		t.Helper()
		old := changed.Address
		changed.Address = fmt.Sprintf("10.250.0.%d", gen)
		written := time.Now()
		replaceFile(t, paths[0], servicesFile(files[0]))
		d := good.waitAddress(t, changed.Address, old, written, 15*time.Second)
		if d > hostileChangeBound {
			t.Errorf("change %d reached the well-behaved client %v after the write, more than the bound %v", gen, d.Round(time.Millisecond), hostileChangeBound)
		}
		return d
	}
	before := change(1)
	base := peak.Swap(0)
	logBefore := len(b.Log())

	var polls int
	var unready []string
	watchers.Go(func() {
		for tick := time.NewTicker(100 * time.Millisecond); ; {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := b.Admin(pctx, "/readyz")
			cancel()
			if ctx.Err() != nil {
				return
			}
			polls++
			if err != nil {
				unready = append(unready, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	attackStart := time.Now()
	attackers, err := hostile.Run(hostile.Options{Addr: b.MCPAddr, Node: hostileNode(), BigTypeURL: se, SmallTypeURL: hostileTypeURL("WorkloadEntry")})
	t.Cleanup(attackers.Close)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: attacks sent in %v", time.Since(attackStart).Round(time.Millisecond))
	var lat []time.Duration
	for gen := 2; gen < 2+hostileChanges; gen++ {
		lat = append(lat, change(gen))
	}
	stop()
	watchers.Wait()

	metrics := bridgeAdmin(t, b, "/metrics")
	if got := metricSum(string(metrics), "mcp_bridge_mcp_limit_rejections_total", map[string]string{"limit": "streams_per_peer"}); got < 900 {
		t.Errorf("streams_per_peer rejections = %v, want most of the 1,000 streams from one peer", got)
	}
	if len(unready) > 0 {
		t.Errorf("/readyz failed %d of %d polls during the attack: %s", len(unready), polls, strings.Join(unready, "; "))
	}
	if polls == 0 {
		t.Errorf("/readyz was never polled during the attack")
	}
	attackPeak := peak.Load()
	grown := attackPeak - base
	if grown > hostileRSSBound {
		t.Errorf("the bridge's RSS grew by %d MiB under attack (baseline %d MiB, peak %d MiB), want under %d MiB",
			grown>>20, base>>20, attackPeak>>20, hostileRSSBound>>20)
	}
	// The NACK flood sent 100 MiB of error text; the bridge logs a truncated, rate-limited line.
	if logGrowth := len(b.Log()) - logBefore; logGrowth > 1<<20 {
		t.Errorf("the bridge's log grew by %d KiB during the attack, want under 1 MiB", logGrowth>>10)
	}
	slices.Sort(lat)
	t.Logf("measure: bridge RSS baseline %d MiB, peak under attack %d MiB (grown %d MiB, bound %d MiB); /readyz 200 at all %d polls",
		base>>20, attackPeak>>20, grown>>20, hostileRSSBound>>20, polls)
	t.Logf("measure: file change -> well-behaved client (bound %v): %v before the attack; under attack min %v median %v max %v; test took %v",
		hostileChangeBound, before.Round(time.Millisecond), lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond), time.Since(started).Round(time.Second))
}

// hostileNode identifies the test's clients as Istiod's MCP client does (pkg/adsc: a sidecar
// node id and the "api" generator).
func hostileNode() *core.Node {
	return &core.Node{Id: "sidecar~" + hostileGoodPeer + "~istiod-e2e.istio-system~istio-system.svc.cluster.local",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"GENERATOR": structpb.NewStringValue("api")}}}
}

// seWatch is a well-behaved SotW client: it subscribes to ServiceEntries and ACKs every response.
// It decodes each DiscoveryResponse but not the resources inside (Any bytes), so the time it
// reports is the bridge's, not the test's decoding of 20 MB of ServiceEntries.
type seWatch struct {
	arrivals chan seArrival
	done     chan error
}

type seArrival struct {
	at   time.Time
	resp *discovery.DiscoveryResponse
}

func watchServiceEntries(t *testing.T, addr, typeURL string) *seWatch {
	t.Helper()
	cc, err := hostile.Dial(addr, hostileGoodPeer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open the well-behaved client's ADS stream: %v", err)
	}
	if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL, Node: hostileNode()}); err != nil {
		t.Fatalf("subscribe to %s: %v", typeURL, err)
	}
	w := &seWatch{arrivals: make(chan seArrival, 100), done: make(chan error, 1)}
	go func() {
		for {
			resp, err := s.Recv()
			if err != nil {
				w.done <- err
				return
			}
			w.arrivals <- seArrival{time.Now(), resp}
			if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
				w.done <- fmt.Errorf("ACK: %w", err)
				return
			}
		}
	}()
	return w
}

func (w *seWatch) next(t *testing.T, timeout time.Duration) seArrival {
	t.Helper()
	select {
	case a := <-w.arrivals:
		return a
	case err := <-w.done:
		t.Fatalf("the well-behaved client's stream ended: %v", err)
	case <-time.After(timeout):
		t.Fatalf("the well-behaved client got no response within %v", timeout)
	}
	return seArrival{}
}

// waitAddress waits for the first response in which some ServiceEntry has an endpoint at addr
// and none at old, checks it still holds the whole estate, and returns how long after written it
// arrived.
func (w *seWatch) waitAddress(t *testing.T, addr, old string, written time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a := w.next(t, time.Until(deadline))
		if !containsString(a.resp, addr) || containsString(a.resp, old) {
			continue
		}
		if n := len(a.resp.GetResources()); n != hostileServices {
			t.Fatalf("the response with %s has %d ServiceEntries, want %d", addr, n, hostileServices)
		}
		return a.at.Sub(written)
	}
}

// containsString reports whether a protobuf string field equal to s (its length byte, then s)
// is in any resource of resp: the resources are MCP envelopes around ServiceEntries, and an
// endpoint's address is such a field. The length byte keeps 10.250.0.1 from matching 10.250.0.10.
func containsString(resp *discovery.DiscoveryResponse, s string) bool {
	needle := append([]byte{byte(len(s))}, s...)
	for _, r := range resp.GetResources() {
		if bytes.Contains(r.GetValue(), needle) {
			return true
		}
	}
	return false
}
