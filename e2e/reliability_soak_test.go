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
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
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
)

// soakConfig is the soak's size: the short version by default, the long one with
// MCP_BRIDGE_SOAK=long, each figure overridable.
type soakConfig struct {
	instances int           // MCP_BRIDGE_SOAK_INSTANCES
	duration  time.Duration // MCP_BRIDGE_SOAK_DURATION: sustained churn
	rate      int           // MCP_BRIDGE_SOAK_RATE: changes per second, sustained
	// Bounds asserted.
	lagP99   time.Duration
	rssRatio float64 // peak RSS during the churn / baseline
	// settleGC waits (up to 150 s each: Go forces a GC every 2 minutes) for a GC after the
	// initial sync and after the churn, so both live-heap readings are settled; without it (the
	// short version) the last GC may have run in the sync's or the churn's tail.
	settleGC bool
}

func soakFromEnv(t *testing.T) soakConfig {
	c := soakConfig{instances: 10_000, duration: 30 * time.Second, rate: 20, lagP99: 5 * time.Second, rssRatio: 3}
	if os.Getenv("MCP_BRIDGE_SOAK") == "long" {
		c.instances, c.duration, c.settleGC = 100_000, 10*time.Minute, true
	}
	c.instances = scaleEnvInt(t, "MCP_BRIDGE_SOAK_INSTANCES", c.instances)
	c.duration = scaleEnvDuration(t, "MCP_BRIDGE_SOAK_DURATION", c.duration)
	c.rate = scaleEnvInt(t, "MCP_BRIDGE_SOAK_RATE", c.rate)
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

// soakChange is one registry change and when the MCP client first showed it.
type soakChange struct {
	iface   int
	ip      string
	present bool
	at      time.Time
	seen    time.Time
}

// TestChurnSoak is issue 17's churn soak, short version: a real ZooKeeper with 10k Dubbo
// providers (100 interfaces x 100), 30 s of sustained registrations and deregistrations at 20
// changes/s, a burst of 1,000 changes in about a second half-way through, read by a real bridge
// process and an MCP client that ACKs. Asserted: every change reaches the MCP client (at the end,
// every interface's endpoints there equal its providers in ZooKeeper), the lag of each change
// (written -> shown) has p99 within 5 s, the bridge's RSS peak stays within 3x its baseline and
// its goroutines are back at baseline (+20) and its live heap within its baseline plus the
// resource history's growth (and a margin) after. The long version (100k instances, 10 min):
// MCP_BRIDGE_SOAK=long go test -run TestChurnSoak -timeout 30m ./e2e/ (docs/reliability.md).
func TestChurnSoak(t *testing.T) {
	t.Parallel()
	sc := soakFromEnv(t)
	z := servers.StartZooKeeper(t)
	c := zktest.Connect(t, z.Addr(), 30*time.Second)
	est := &soakEstate{ifaces: sc.instances / (soakBase + soakSlots/2), paths: map[[2]int]string{}}
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

	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage), Config: fmt.Sprintf(
		"registries:\n  - name: soak\n    type: zookeeper\n    zookeeper:\n      servers: [%q]\n", z.Addr())})
	mcp := mcpclient.Connect(t, b.MCPAddr)
	mcp.WaitFor(t, 2*time.Minute, "the initial estate", func(m *mcpclient.Client) error { return soakMatches(t, c, m, est.ifaces) })
	t.Logf("measure: bridge started -> the MCP client holds all %d providers: %v", len(nodes), time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // settle before the baseline
	if sc.settleGC {
		soakWaitGC(t, b, "after the initial sync")
	}
	baseRSS, baseG, baseHeap, baseHist := soakSample(t, b)

	// Sample RSS and goroutines through the churn.
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

	// Watch each change arrive at the MCP client.
	var (
		mu      sync.Mutex
		pending []*soakChange
		done    []*soakChange
	)
	stopWatching := soakEvery(10*time.Millisecond, func() {
		now := time.Now()
		mu.Lock()
		pending = slices.DeleteFunc(pending, func(ch *soakChange) bool {
			if soakShows(mcp, soakHost(ch.iface), ch.ip) != ch.present {
				return false
			}
			ch.seen = now
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
		ch := &soakChange{iface: i, ip: soakIP(i, slot), present: !present, at: time.Now()}
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
	// Sustained changes are numbered from 0 on a fixed schedule (change n is due n/rate after
	// the start: late ones catch up, so the rate holds on a loaded machine); the burst's are
	// numbered after all of them and run on their own goroutines half-way, beside the schedule.
	churnAt := time.Now()
	sustained := int(sc.duration.Seconds() * float64(sc.rate))
	k := sustained + soakBurst
	if k > est.ifaces*soakSlots {
		t.Fatalf("%d changes would change some slots twice (%d interfaces x %d slots): lower MCP_BRIDGE_SOAK_RATE or _DURATION, or raise _INSTANCES", k, est.ifaces, soakSlots)
	}
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

	mcp.WaitFor(t, time.Minute, "the final state equal to ZooKeeper's", func(m *mcpclient.Client) error { return soakMatches(t, c, m, est.ifaces) })
	convergedAfter := time.Since(churnAt) - churned
	servers.WaitFor(t, 20*time.Second, "every change seen", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(pending) > 0 {
			return fmt.Errorf("%d changes not seen yet", len(pending))
		}
		return nil
	})
	stopWatching()
	stopSampling()
	time.Sleep(3 * time.Second) // settle
	if sc.settleGC {
		soakWaitGC(t, b, "after the churn")
	}
	afterRSS, afterG, afterHeap, afterHist := soakSample(t, b)

	lags := make([]time.Duration, 0, len(done))
	for _, ch := range done {
		lags = append(lags, ch.seen.Sub(ch.at))
	}
	slices.Sort(lags)
	p50, p99, worst := percentile(lags, 0.50), percentile(lags, 0.99), lags[len(lags)-1]
	t.Logf("measure: churn soak: %d instances, %d changes in %v (%.1f/s sustained, a burst of %d in %v); final state at the MCP client %v after the churn ended",
		sc.instances, k, churned.Round(time.Millisecond), float64(sustained)/churned.Seconds(), soakBurst, burstTook.Round(time.Millisecond), convergedAfter.Round(time.Millisecond))
	t.Logf("measure: churn soak lag (ZooKeeper write -> MCP client): p50 %v, p99 %v, max %v (bound p99 %v)",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), sc.lagP99)
	t.Logf("measure: churn soak bridge RSS: baseline %.1f MiB, peak %.1f MiB, after %.1f MiB; live heap: baseline %.1f MiB, after %.1f MiB (resource history %.1f -> %.1f MiB); goroutines baseline %.0f, peak %.0f, after %.0f",
		mib(baseRSS), mib(peakRSS), mib(afterRSS), mib(baseHeap), mib(afterHeap), mib(baseHist), mib(afterHist), baseG, peakG, afterG)
	if len(done) != k {
		t.Errorf("%d changes seen at the MCP client, %d made", len(done), k)
	}
	if p99 > sc.lagP99 {
		t.Errorf("lag p99 %v, want within %v", p99, sc.lagP99)
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

// soakMatches compares every interface's endpoints at the MCP client with its providers in
// ZooKeeper (read from ZooKeeper itself, not from what the test believes it wrote).
func soakMatches(t *testing.T, c *zk.Conn, m *mcpclient.Client, ifaces int) error {
	for i := range ifaces {
		children, _, err := c.Children("/dubbo/" + soakIface(i) + "/providers")
		if err != nil {
			return fmt.Errorf("listing the providers of %s: %w", soakIface(i), err)
		}
		var want []string
		for _, ch := range children {
			u, err := url.QueryUnescape(ch)
			if err != nil {
				t.Fatalf("provider znode %q: %v", ch, err)
			}
			if sm := soakProviderIP.FindStringSubmatch(u); sm != nil {
				want = append(want, sm[1])
			}
		}
		var got []string
		if se := m.Entry(soakHost(i)); se != nil {
			for _, e := range se.GetEndpoints() {
				got = append(got, e.GetAddress())
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s: the MCP client has %d endpoints, ZooKeeper %d providers", soakHost(i), len(got), len(want))
		}
	}
	return nil
}
