package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// The churn soak's shape. Each Dubbo 2 interface has soakBase providers that never change and
// soakSlots churn slots, half of them registered at the start; a change registers or deregisters
// the provider of one slot (a new znode or a deleted one, as a Dubbo process starting or
// stopping). Changes go round the interfaces, then the slots, so one slot changes again only
// after interfaces x soakSlots changes: each change's arrival at the MCP client can be told apart.
const (
	soakBase  = 90
	soakSlots = 20
	// soakBurst changes are made as fast as ZooKeeper takes them (32 concurrent writers), once,
	// half-way through the sustained churn.
	soakBurst = 1000
	// soakIstiodWarmup is how many EDS pushes the churn must make Istiod do before its memory is
	// asserted flat. Istiod's heap grows over its first ~100 pushes from a config source (it
	// keeps received MCP bytes: docs/reliability.md) and then levels off: measured at 20k
	// instances, +1,100 MiB RSS over the first ~90 pushes, +0.7% over the last ~90 of 278.
	// 150 pushes put the first third of the churn well into that growth and the last third past
	// it; the short soak (~35 pushes in 30 s) only reports.
	soakIstiodWarmup = 150
)

// soakConfig is the soak's size: the short version by default, the long one with
// MCP_BRIDGE_SOAK=long, each figure overridable.
type soakConfig struct {
	instances int           // MCP_BRIDGE_SOAK_INSTANCES
	duration  time.Duration // MCP_BRIDGE_SOAK_DURATION: sustained churn
	rate      int           // MCP_BRIDGE_SOAK_RATE: changes per second, sustained
	// Bounds asserted.
	// Lag (registry write -> shown): p99 of the sustained changes, the maximum of the burst's;
	// at the MCP client and at the sidecar's EDS through Istiod.
	lagP99, sidecarLagP99     time.Duration
	burstLag, sidecarBurstLag time.Duration
	rssRatio                  float64 // the bridge's peak RSS during the churn / its baseline
	// istiodGrowth (MCP_BRIDGE_SOAK_ISTIOD_GROWTH) bounds Istiod's memory: its peak RSS and live
	// heap in the last third of the churn within istiodGrowth x their peak in the first third,
	// asserted once the churn made Istiod push at least soakIstiodWarmup times; 0 reports the
	// figures without asserting them.
	istiodGrowth float64
	// settleGC waits (up to 150 s each: Go forces a GC every 2 minutes) for a GC after the
	// initial sync and after the churn, so both live-heap readings are settled; without it (the
	// short version) the last GC may have run in the sync's or the churn's tail.
	settleGC bool
}

func soakFromEnv(t *testing.T) soakConfig {
	c := soakConfig{instances: 10_000, duration: 30 * time.Second, rate: 20, lagP99: 5 * time.Second, sidecarLagP99: 15 * time.Second,
		burstLag: 10 * time.Second, sidecarBurstLag: 30 * time.Second, rssRatio: 3, istiodGrowth: 1.5}
	if os.Getenv("MCP_BRIDGE_SOAK") == "long" {
		c.instances, c.duration, c.settleGC = 100_000, 10*time.Minute, true
	}
	c.instances = scaleEnvInt(t, "MCP_BRIDGE_SOAK_INSTANCES", c.instances)
	if c.instances > 10_000 {
		// Above the short size the test process (decoding every state-of-the-world response at
		// the MCP client) and Istiod share the 2 cores with the bridge: at 20k the MCP client's
		// p99 was 4.3-4.6 s. The 100k bounds are not measured yet (docs/reliability.md).
		c.lagP99, c.sidecarLagP99, c.burstLag, c.sidecarBurstLag = 10*time.Second, 30*time.Second, 30*time.Second, 60*time.Second
	}
	c.duration = scaleEnvDuration(t, "MCP_BRIDGE_SOAK_DURATION", c.duration)
	c.rate = scaleEnvInt(t, "MCP_BRIDGE_SOAK_RATE", c.rate)
	if s := os.Getenv("MCP_BRIDGE_SOAK_ISTIOD_GROWTH"); s != "" {
		g, err := strconv.ParseFloat(s, 64)
		if err != nil || g < 0 {
			t.Fatalf("MCP_BRIDGE_SOAK_ISTIOD_GROWTH=%q: want a ratio >= 1, or 0 to report Istiod's memory without asserting it", s)
		}
		c.istiodGrowth = g
	}
	if c.instances < soakBase+soakSlots/2 || c.rate < 1 {
		t.Fatalf("MCP_BRIDGE_SOAK_INSTANCES must be at least %d and MCP_BRIDGE_SOAK_RATE at least 1", soakBase+soakSlots/2)
	}
	return c
}

// soakEstate is the registry's content as the test made it.
type soakEstate struct {
	ifaces int
	mu     sync.Mutex
	paths  map[[2]int]string // (interface, slot) -> the provider znode, when registered
}

func soakIface(i int) string { return fmt.Sprintf("com.example.soak.Svc%04d", i) }
func soakHost(i int) string  { return fmt.Sprintf("com.example.soak.svc%04d", i) }
func soakIP(i, slot int) string {
	return fmt.Sprintf("10.%d.%d.%d", i/256, i%256, slot+1)
}
func soakPath(i, slot int) string {
	return zktest.ProviderPath("/dubbo", soakIface(i), zkDubbo2URL(soakIface(i), soakIP(i, slot)))
}

// soakChange is one registry change and when the MCP client and the sidecar first showed it.
type soakChange struct {
	iface   int
	ip      string
	present bool
	burst   bool
	at      time.Time
	seen    time.Time // at the MCP client
	sidecar time.Time // in the sidecar's EDS, through Istiod
}

// TestChurnSoak is issue 17's churn soak, short version: a real ZooKeeper with 10k Dubbo
// providers (100 interfaces x 100), 30 s of sustained registrations and deregistrations at 20
// changes/s, a burst of 1,000 changes in about a second half-way through, read by a real bridge
// process that feeds an MCP client that ACKs and a real Istiod with a sidecar view of it.
// Asserted: every change reaches the MCP client and the sidecar (at the end, every interface's
// endpoints at both equal its providers in ZooKeeper), the lag of each change (written -> shown)
// has p99 within 5 s at the MCP client and 15 s at the sidecar, the bridge's RSS peak stays
// within 3x its baseline, its goroutines are back at baseline (+20) and its live heap within its
// baseline plus the resource history's growth (and a margin) after, and Istiod's memory is flat:
// its peak RSS and live heap in the last third of the churn within 1.5x the first third's, once
// the churn is long enough to take Istiod past its warm-up (not the short version's). The
// long version (100k instances, 10 min):
// MCP_BRIDGE_SOAK=long go test -run TestChurnSoak -timeout 40m ./e2e/ (docs/reliability.md).
func TestChurnSoak(t *testing.T) {
	t.Parallel()
	sc := soakFromEnv(t)
	est := &soakEstate{ifaces: sc.instances / (soakBase + soakSlots/2), paths: map[[2]int]string{}}
	// Sustained changes are numbered from 0, the burst's after them.
	sustained := int(sc.duration.Seconds() * float64(sc.rate))
	k := sustained + soakBurst
	if k > est.ifaces*soakSlots {
		t.Fatalf("%d changes would change some slots twice (%d interfaces x %d slots): lower MCP_BRIDGE_SOAK_RATE or _DURATION, or raise _INSTANCES", k, est.ifaces, soakSlots)
	}
	z := servers.StartZooKeeper(t)
	c := zktest.Connect(t, z.Addr(), 30*time.Second)
	var nodes []zktest.Node
	for i := range est.ifaces {
		for slot := range soakBase + soakSlots {
			if slot >= soakBase && slot%2 == 1 {
				continue // odd churn slots start unregistered
			}
			p := soakPath(i, slot)
			est.paths[[2]int{i, slot}] = p
			nodes = append(nodes, zktest.Node{Path: p})
		}
	}
	start := time.Now()
	zktest.CreateMany(t, c, nodes)
	t.Logf("measure: %d providers of %d interfaces written to ZooKeeper in %v", len(nodes), est.ifaces, time.Since(start).Round(time.Millisecond))
	initial := soakRegistry(t, c, est.ifaces)

	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage), Config: fmt.Sprintf(
		"registries:\n  - name: soak\n    type: zookeeper\n    zookeeper:\n      servers: [%q]\n", z.Addr())})
	mcp := mcpclient.Connect(t, b.MCPAddr)
	mcp.WaitFor(t, 2*time.Minute, "the initial estate", func(m *mcpclient.Client) error { return soakMatches(m, initial) })
	t.Logf("measure: bridge started -> the MCP client holds all %d providers: %v", len(nodes), time.Since(start).Round(time.Millisecond))
	istiodAt := time.Now()
	istiod, view := soakStartIstiod(t, b)
	view.WaitFor(t, "the initial estate at the sidecar", 3*time.Minute, func(s *xdsview.Snapshot) error { return soakSidecarMatches(s, initial) })
	t.Logf("measure: Istiod started -> the sidecar's EDS holds all %d providers: %v", len(nodes), time.Since(istiodAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // settle before the baseline
	if sc.settleGC {
		soakWaitGC(t, b, "after the initial sync")
		soakWaitIstiodGC(t, istiod, "after the initial sync")
	}
	baseRSS, baseG, baseHeap, baseHist := soakSample(t, b)
	iBaseRSS, iBaseHeap, iBasePushes, err := istiodMemory(istiod)
	if err != nil {
		t.Fatal(err)
	}

	// Sample the bridge's RSS and goroutines, and Istiod's memory, through the churn.
	churnAt := time.Now()
	var peakRSS int64
	var peakG float64
	stopSampling := soakEvery(500*time.Millisecond, func() {
		if rss, err := servers.RSS(b.PID()); err == nil {
			peakRSS = max(peakRSS, rss)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if m, err := b.Admin(ctx, "/metrics"); err == nil {
			peakG = max(peakG, metricSum(string(m), "go_goroutines", nil))
		}
	})
	istiodMem := sampleIstiod(istiod, churnAt, time.Second)

	// Watch each change arrive at the MCP client and at the sidecar. A slot changes once per
	// run, so a change once shown stays shown: a check every few milliseconds cannot miss it.
	var (
		mu      sync.Mutex
		pending []*soakChange
		done    []*soakChange
	)
	stopWatching := soakEvery(10*time.Millisecond, func() {
		now := time.Now()
		snap := view.Snapshot()
		mu.Lock()
		pending = slices.DeleteFunc(pending, func(ch *soakChange) bool {
			if ch.seen.IsZero() && soakShows(mcp, soakHost(ch.iface), ch.ip) == ch.present {
				ch.seen = now
			}
			if ch.sidecar.IsZero() && soakSidecarShows(snap, ch.iface, ch.ip) == ch.present {
				ch.sidecar = now
			}
			if ch.seen.IsZero() || ch.sidecar.IsZero() {
				return false
			}
			done = append(done, ch)
			return true
		})
		mu.Unlock()
	})
	change := func(k int) error {
		i, slot := k%est.ifaces, soakBase+(k/est.ifaces)%soakSlots
		key := [2]int{i, slot}
		est.mu.Lock()
		p, present := est.paths[key]
		est.mu.Unlock()
		ch := &soakChange{iface: i, ip: soakIP(i, slot), present: !present, burst: k >= sustained, at: time.Now()}
		var err error
		if present {
			err = c.Delete(p, -1)
		} else {
			p = soakPath(i, slot)
			_, err = c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		}
		if err != nil {
			return fmt.Errorf("change %d: %w", k, err)
		}
		est.mu.Lock()
		if present {
			delete(est.paths, key)
		} else {
			est.paths[key] = p
		}
		est.mu.Unlock()
		mu.Lock()
		pending = append(pending, ch)
		mu.Unlock()
		return nil
	}

	// Each change is written on its own goroutine, so a slow ZooKeeper answer does not lower the
	// rate (changes never touch the same slot within a run, so their order does not matter).
	var (
		wg        sync.WaitGroup
		errMu     sync.Mutex
		changeErr error
	)
	async := func(n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := change(n); err != nil {
				errMu.Lock()
				changeErr = cmp.Or(changeErr, err)
				errMu.Unlock()
			}
		}()
	}
	// Sustained changes follow a fixed schedule (change n is due n/rate after
	// the start: late ones catch up, so the rate holds on a loaded machine); the burst's are
	// numbered after all of them and run on their own goroutines half-way, beside the schedule.
	var burstTook time.Duration
	burst := make(chan struct{})
	go func() {
		defer close(burst)
		time.Sleep(sc.duration / 2)
		burstAt := time.Now()
		var bw sync.WaitGroup
		next := make(chan int)
		for range 32 {
			bw.Add(1)
			go func() {
				defer bw.Done()
				for n := range next {
					if err := change(n); err != nil {
						errMu.Lock()
						changeErr = cmp.Or(changeErr, err)
						errMu.Unlock()
					}
				}
			}()
		}
		for n := range soakBurst {
			next <- sustained + n
		}
		close(next)
		bw.Wait()
		burstTook = time.Since(burstAt)
	}()
	for n := range sustained {
		time.Sleep(time.Until(churnAt.Add(time.Duration(n) * time.Second / time.Duration(sc.rate))))
		async(n)
	}
	<-burst
	wg.Wait()
	if changeErr != nil {
		t.Fatal(changeErr)
	}
	churned := time.Since(churnAt)

	final := soakRegistry(t, c, est.ifaces)
	mcp.WaitFor(t, time.Minute, "the final state equal to ZooKeeper's", func(m *mcpclient.Client) error { return soakMatches(m, final) })
	convergedAfter := time.Since(churnAt) - churned
	view.WaitFor(t, "the sidecar's EDS equal to ZooKeeper's final state", 2*time.Minute, func(s *xdsview.Snapshot) error { return soakSidecarMatches(s, final) })
	sidecarAfter := time.Since(churnAt) - churned
	servers.WaitFor(t, 20*time.Second, "every change seen", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(pending) > 0 {
			return fmt.Errorf("%d changes not seen yet at the MCP client and the sidecar", len(pending))
		}
		return nil
	})
	stopWatching()
	stopSampling()
	time.Sleep(3 * time.Second) // settle
	istiodMem.stop()
	if sc.settleGC {
		soakWaitGC(t, b, "after the churn")
		soakWaitIstiodGC(t, istiod, "after the churn")
	}
	afterRSS, afterG, afterHeap, afterHist := soakSample(t, b)
	iAfterRSS, iAfterHeap, iAfterPushes, err := istiodMemory(istiod)
	if err != nil {
		t.Fatal(err)
	}

	var lags, sidecarLags, burstLags, burstSidecarLags []time.Duration
	for _, ch := range done {
		if ch.burst {
			burstLags, burstSidecarLags = append(burstLags, ch.seen.Sub(ch.at)), append(burstSidecarLags, ch.sidecar.Sub(ch.at))
		} else {
			lags, sidecarLags = append(lags, ch.seen.Sub(ch.at)), append(sidecarLags, ch.sidecar.Sub(ch.at))
		}
	}
	p50, p99, worst := soakLagStats(lags)
	sp50, sp99, sworst := soakLagStats(sidecarLags)
	bp50, _, bworst := soakLagStats(burstLags)
	bsp50, _, bsworst := soakLagStats(burstSidecarLags)
	th := thirds(istiodMem.samples, churned)
	t.Logf("measure: churn soak: %d instances, %d changes in %v (%.1f/s sustained, a burst of %d in %v); final state at the MCP client %v, at the sidecar %v after the churn ended",
		sc.instances, k, churned.Round(time.Millisecond), float64(sustained)/churned.Seconds(), soakBurst, burstTook.Round(time.Millisecond), convergedAfter.Round(time.Millisecond), sidecarAfter.Round(time.Millisecond))
	t.Logf("measure: churn soak lag (ZooKeeper write -> MCP client): sustained p50 %v, p99 %v, max %v (bound p99 %v); burst p50 %v, max %v (bound max %v)",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), sc.lagP99, bp50.Round(time.Millisecond), bworst.Round(time.Millisecond), sc.burstLag)
	t.Logf("measure: churn soak lag (ZooKeeper write -> sidecar EDS through Istiod): sustained p50 %v, p99 %v, max %v (bound p99 %v); burst p50 %v, max %v (bound max %v); Istiod made %.0f EDS pushes during the churn",
		sp50.Round(time.Millisecond), sp99.Round(time.Millisecond), sworst.Round(time.Millisecond), sc.sidecarLagP99, bsp50.Round(time.Millisecond), bsworst.Round(time.Millisecond), sc.sidecarBurstLag, iAfterPushes-iBasePushes)
	t.Logf("measure: churn soak bridge RSS: baseline %.1f MiB, peak %.1f MiB, after %.1f MiB; live heap: baseline %.1f MiB, after %.1f MiB (resource history %.1f -> %.1f MiB); goroutines baseline %.0f, peak %.0f, after %.0f",
		mib(baseRSS), mib(peakRSS), mib(afterRSS), mib(baseHeap), mib(afterHeap), mib(baseHist), mib(afterHist), baseG, peakG, afterG)
	t.Logf("measure: churn soak Istiod RSS: after sync %.1f MiB, peak per third of the churn %.1f / %.1f / %.1f MiB, after %.1f MiB; live heap: after sync %.1f MiB, peak per third %.1f / %.1f / %.1f MiB, after %.1f MiB (%d samples; bound: last third within %.2fx the first)",
		mib(iBaseRSS), mib(th.rss[0]), mib(th.rss[1]), mib(th.rss[2]), mib(iAfterRSS), mib(iBaseHeap), mib(th.heap[0]), mib(th.heap[1]), mib(th.heap[2]), mib(iAfterHeap), len(istiodMem.samples), sc.istiodGrowth)
	if len(done) != k {
		t.Errorf("%d changes seen at the MCP client and the sidecar, %d made", len(done), k)
	}
	for _, b := range []struct {
		what      string
		got, want time.Duration
	}{
		{"sustained changes' lag p99 at the MCP client", p99, sc.lagP99},
		{"sustained changes' lag p99 at the sidecar", sp99, sc.sidecarLagP99},
		{"the burst's longest lag at the MCP client", bworst, sc.burstLag},
		{"the burst's longest lag at the sidecar", bsworst, sc.sidecarBurstLag},
	} {
		if b.got > b.want {
			t.Errorf("%s %v, want within %v", b.what, b.got, b.want)
		}
	}
	growth := sc.istiodGrowth
	if pushes := iAfterPushes - iBasePushes; pushes < soakIstiodWarmup && growth > 0 {
		t.Logf("measure: Istiod's memory not asserted flat: %.0f EDS pushes during the churn, fewer than the %d of its warm-up", pushes, soakIstiodWarmup)
		growth = 0
	}
	if err := th.flatErr(growth); err != nil {
		t.Errorf("%v (MCP_BRIDGE_SOAK_ISTIOD_GROWTH=0 reports without asserting)", err)
	}
	if float64(peakRSS) > sc.rssRatio*float64(baseRSS) {
		t.Errorf("bridge RSS peaked at %.1f MiB, more than %.0fx its baseline %.1f MiB", mib(peakRSS), sc.rssRatio, mib(baseRSS))
	}
	// RSS is not what comes back: the Go runtime keeps freed heap from the OS for minutes (its
	// scavenger). The live heap (as of the last GC) is what must stay near its baseline: above it
	// by what the resource history keeps of the churn (past versions of the changed
	// ServiceEntries, within history.maxBytes: its own account, from the status page), plus a
	// margin: a quarter of the baseline, or the whole baseline unless a GC ran after the churn
	// (the last one may have run in the churn's tail, with a push's old and new state both live).
	margin := baseHeap / 4
	if !sc.settleGC {
		margin = baseHeap
	}
	heapBound := baseHeap + max(afterHist-baseHist, 0) + margin
	if afterHeap > heapBound {
		t.Errorf("bridge live heap %.1f MiB after the churn, more than its bound %.1f MiB (baseline %.1f MiB + the history's growth %.1f MiB + %.1f MiB)",
			mib(afterHeap), mib(heapBound), mib(baseHeap), mib(afterHist-baseHist), mib(margin))
	}
	if afterG > baseG+20 {
		t.Errorf("bridge goroutines %.0f after the churn, baseline %.0f: a leak", afterG, baseG)
	}
}

// soakLagStats returns the median, 99th percentile and maximum of lags (sorted in place).
func soakLagStats(lags []time.Duration) (p50, p99, worst time.Duration) {
	if len(lags) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lags)
	return percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1]
}

// soakEvery calls f every interval on its own goroutine until the returned stop is called;
// stop returns once f no longer runs.
func soakEvery(interval time.Duration, f func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(interval):
			}
			f()
		}
	}()
	return func() { close(quit); <-done }
}

// soakWaitGC waits for the bridge's next GC (Go forces one every 2 minutes when nothing
// else triggers one), so the live heap read next is the settled one.
func soakWaitGC(t *testing.T, b *servers.Bridge, what string) {
	t.Helper()
	from := float64(time.Now().Unix())
	servers.WaitFor(t, 150*time.Second, "a GC "+what+" (Go forces one every 2 minutes)", func() error {
		if at := metricSum(bridgeMetrics(t, b), "go_memstats_last_gc_time_seconds", nil); at < from {
			return fmt.Errorf("the last GC was %.0f s before", from-at)
		}
		return nil
	})
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// soakSample reads the bridge's RSS, goroutine count, live Go heap (as of its last GC) and the
// bytes its resource history holds (its own account, from the status page's JSON).
func soakSample(t *testing.T, b *servers.Bridge) (rss int64, goroutines float64, heap, hist int64) {
	t.Helper()
	rss, err := servers.RSS(b.PID())
	if err != nil {
		t.Fatal(err)
	}
	m := bridgeMetrics(t, b)
	// The next GC's target is twice the heap live after the last one (GOGC 100, the bridge's).
	heap = int64(metricSum(m, "go_memstats_next_gc_bytes", nil) / 2)
	if heap == 0 {
		t.Fatal("the bridge's /metrics has no go_memstats_next_gc_bytes")
	}
	var page struct {
		History struct {
			Bytes int64 `json:"bytes"`
		} `json:"history"`
	}
	if err := json.Unmarshal(bridgeAdmin(t, b, "/?format=json"), &page); err != nil {
		t.Fatalf("decoding the status page's JSON: %v", err)
	}
	return rss, metricSum(m, "go_goroutines", nil), heap, page.History.Bytes
}

// soakShows reports whether the MCP client's ServiceEntry of host has an endpoint at ip.
func soakShows(m *mcpclient.Client, host, ip string) bool {
	se := m.Entry(host)
	if se == nil {
		return false
	}
	for _, e := range se.GetEndpoints() {
		if e.GetAddress() == ip {
			return true
		}
	}
	return false
}

var soakProviderIP = regexp.MustCompile(`^dubbo://([^:/]+):`)

// soakRegistry lists every interface's provider IPs (sorted) as ZooKeeper itself holds them,
// not as the test believes it wrote them.
func soakRegistry(t *testing.T, c *zk.Conn, ifaces int) [][]string {
	t.Helper()
	out := make([][]string, ifaces)
	for i := range ifaces {
		children, _, err := c.Children("/dubbo/" + soakIface(i) + "/providers")
		if err != nil {
			t.Fatalf("listing the providers of %s: %v", soakIface(i), err)
		}
		ips := []string{}
		for _, ch := range children {
			u, err := url.QueryUnescape(ch)
			if err != nil {
				t.Fatalf("provider znode %q: %v", ch, err)
			}
			if sm := soakProviderIP.FindStringSubmatch(u); sm != nil {
				ips = append(ips, sm[1])
			}
		}
		slices.Sort(ips)
		out[i] = ips
	}
	return out
}

// soakMatches compares every interface's endpoints at the MCP client with want (interface ->
// sorted provider IPs, from soakRegistry).
func soakMatches(m *mcpclient.Client, want [][]string) error {
	for i, ips := range want {
		got := []string{}
		if se := m.Entry(soakHost(i)); se != nil {
			for _, e := range se.GetEndpoints() {
				got = append(got, e.GetAddress())
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, ips) {
			return fmt.Errorf("%s: the MCP client has %d endpoints, ZooKeeper %d providers", soakHost(i), len(got), len(ips))
		}
	}
	return nil
}
