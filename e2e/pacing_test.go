package e2e

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// Bounds of the issue 15 pacing tests, asserted; the typical figures are printed (measure:) and
// written in docs/benchmarks.md, "Istiod-paced pushes".
const (
	// bridgeShareP99Bound bounds the p99 of mcp_bridge_change_to_send_seconds for isolated
	// changes at 1k services x 10 inline, ZooKeeper and Nacos alike (the goal is 10 ms; the
	// histogram's bucket holding the p99 is compared, and the bound leaves room for a loaded
	// 2-core machine).
	bridgeShareP99Bound = 50 * time.Millisecond
	// pacedLagBound bounds, under 20 changes/s, how long after the last change the sidecar's EDS
	// shows every change (digest pacing).
	pacedLagBound = 15 * time.Second
	// pacedRSSRatio bounds Istiod's peak RSS during the burst over its RSS before it (digest).
	// Measured x2.17 (ACK pacing x3.28 from a lower start, similar absolute peak): not flat; see
	// docs/benchmarks.md, "Istiod-paced pushes".
	pacedRSSRatio = 2.75
	// pacingServices x pacingPerService is the estate of every row: 10k inline endpoints.
	pacingServices, pacingPerService = 1000, 10
	// pacingIsolated is the number of isolated changes, one per pacingIsolatedEvery at most.
	pacingIsolated      = 15
	pacingIsolatedEvery = time.Second
)

// pacingCompareACK, when set (to anything), adds to the ZooKeeper row the same burst against ACK
// pacing (a second bridge and Istiod): a comparison for docs/benchmarks.md, nothing asserted, so
// it is off by default to keep the suite's cost down.
const pacingCompareACK = "MCP_BRIDGE_PACING_ACK"

// pacingRegistry is a registry holding the estate of a row of TestIstiodPacedPushes, filled
// before the bridge starts.
type pacingRegistry interface {
	// config is the bridge configuration's registries entry (a YAML list item).
	config() string
	// cluster is service s's outbound cluster, want its endpoints as the registry holds them now.
	cluster(s int) string
	want(s int) []xdsview.Endpoint
	// change makes one change to service s that alters its endpoints.
	change(t *testing.T, s int)
}

// pacingRow is a registry the bridge's share of change -> send is measured for.
type pacingRow struct {
	name string
	// start starts the registry and registers the estate.
	start func(t *testing.T) pacingRegistry
	// debounce is the bridge's debounce block ("" = the defaults: leading edge).
	debounce string
	// burst runs phase 2 (20 changes/s): only where the registry delivers changes at that rate
	// without batching them itself (ZooKeeper; Polaris delays and batches its pushes by ~1 s, so
	// a burst there would measure Polaris).
	burst bool
	// adapterShare names the adapter's histogram of its own share before the Sink call (push
	// received -> Sink), reported next to the bridge's; "" when the adapter has none.
	adapterShare string
}

type pacingResult struct {
	row, mode              string
	rssBefore, rssPeak     int64
	lagAfterLast           time.Duration
	shareP50, shareP99     time.Duration // bucket upper bounds, isolated changes
	adapterP50, adapterP99 time.Duration // the same, adapterShare
	burstShareP99          time.Duration
	coalesced, pushes      float64
	digestWaits            float64
	istiodCPUDuringBurst   time.Duration
	isolatedEDSP50, edsP99 time.Duration
	took                   time.Duration
}

// TestIstiodPacedPushes is issue 15's "Istiod-paced pushes" and "no added latency for an
// isolated change", with a real registry, the real bridge and a real Istiod: 1,000 services x 10
// instances (inline endpoints), one row per registry (ZooKeeper with Dubbo 2 providers; Nacos
// with Spring Cloud instances in the real Nacos-protocol server, pushed to the adapter over gRPC).
// Phase 1, every row: isolated changes about one per second, the bridge's own share (registry
// event reaching the Sink -> response written) at p99 under bridgeShareP99Bound, and change ->
// sidecar EDS measured. Phase 2, ZooKeeper: 20 changes/s for 10 s, faster than Istiod digests
// them at this size: with digest pacing the sidecar's EDS shows every change within
// pacedLagBound of the last one, pushes are coalesced, and Istiod's RSS stays within
// pacedRSSRatio of where it was. With MCP_BRIDGE_PACING_ACK set, the same burst against ACK
// pacing is measured for comparison.
func TestIstiodPacedPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an Istiod with 10k endpoints per registry")
	}
	rows := []pacingRow{
		// Short debounces, so that the merge layer emits each change of the 20/s burst and the
		// MCP server's pacing is what stands between them and Istiod.
		{name: "zookeeper", start: startZKPacing, debounce: "debounce: {quiet: 10ms, max: 50ms}\n", burst: true},
		{name: "nacos", start: startNacosPacing, adapterShare: "mcp_bridge_nacos_push_to_sink_seconds"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			began := time.Now()
			reg := row.start(t)
			t.Logf("measure: %s: %d services x %d instances registered in %v", row.name, pacingServices, pacingPerService, time.Since(began).Round(time.Millisecond))
			modes := []string{"digest"}
			if row.burst && os.Getenv(pacingCompareACK) != "" {
				modes = append(modes, "ack")
			}
			var results []*pacingResult
			for _, mode := range modes {
				results = append(results, runPacing(t, row, reg, mode, mode == "digest"))
			}
			for _, r := range results {
				r.logTo(t)
			}
			d := results[0]
			if d.shareP99 > bridgeShareP99Bound {
				t.Errorf("isolated changes: the bridge's share p99 <= %v, over the bound %v", d.shareP99, bridgeShareP99Bound)
			}
			if !row.burst {
				return
			}
			if d.lagAfterLast > pacedLagBound {
				t.Errorf("digest pacing: every change reached EDS %v after the last one, over the bound %v", d.lagAfterLast, pacedLagBound)
			}
			if ratio := float64(d.rssPeak) / float64(d.rssBefore); ratio > pacedRSSRatio {
				t.Errorf("digest pacing: Istiod RSS %d -> peak %d MiB (x%.2f), over x%.2f", d.rssBefore>>20, d.rssPeak>>20, ratio, pacedRSSRatio)
			}
			if d.coalesced == 0 {
				t.Errorf("digest pacing coalesced no push in a burst faster than Istiod digests")
			}
		})
	}
}

func (r *pacingResult) logTo(t *testing.T) {
	t.Helper()
	if r.mode == "digest" {
		adapter := ""
		if r.adapterP99 > 0 {
			adapter = fmt.Sprintf(" (adapter push->sink before it: p50<=%v p99<=%v)", r.adapterP50, r.adapterP99)
		}
		t.Logf("measure: pacing %s %s isolated: bridge share sink->send p50<=%v p99<=%v%s, change->EDS p50 %v p99 %v",
			r.row, r.mode, r.shareP50, r.shareP99, adapter, r.isolatedEDSP50, r.edsP99)
	}
	if r.pushes > 0 {
		t.Logf("measure: pacing %s %s 20/s burst: lag after last %v, bridge share p99<=%v, pushes %v coalesced %v digest waits %v, istiod RSS %d -> peak %d MiB (x%.2f), istiod CPU %v",
			r.row, r.mode, r.lagAfterLast.Round(time.Millisecond), r.burstShareP99, r.pushes, r.coalesced, r.digestWaits,
			r.rssBefore>>20, r.rssPeak>>20, float64(r.rssPeak)/float64(r.rssBefore), r.istiodCPUDuringBurst.Round(time.Millisecond))
	}
	t.Logf("measure: pacing %s %s: bridge + Istiod start to the end of the run %v", r.row, r.mode, r.took.Round(time.Millisecond))
}

func runPacing(t *testing.T, row pacingRow, reg pacingRegistry, mode string, isolated bool) *pacingResult {
	began := time.Now()
	r := &pacingResult{row: row.name, mode: mode}
	mon := servers.FreePort(t)
	cfg := fmt.Sprintf("registries:\n%s%smcp:\n  pacing: {mode: %s, metricsPort: %d}\n", reg.config(), row.debounce, mode, mon)
	b := startBridge(t, cfg)
	defer b.Stop(5 * time.Second)
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}},
		MonitoringPort: mon, ReadyTimeout: 3 * time.Minute})
	defer cp.Istiod.Stop(5 * time.Second)
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	defer view.Close()
	waitAll := func(what string, services []int, timeout time.Duration) time.Time {
		var seen time.Time
		view.WaitFor(t, what, timeout, func(snap *xdsview.Snapshot) error {
			seen = time.Time{}
			for _, s := range services {
				if err := endpointsMatch(snap, reg.cluster(s), reg.want(s)); err != nil {
					return err
				}
				if at := snap.Changed[xdsview.EDS][reg.cluster(s)]; at.After(seen) {
					seen = at
				}
			}
			return nil
		})
		return seen
	}
	waitAll("every service's endpoints", []int{0, pacingServices / 2, pacingServices - 1}, 3*time.Minute)
	time.Sleep(2 * time.Second) // let Istiod's start-up pushes settle before measuring

	if isolated {
		// The histogram is read as a difference, so that the start-up pushes do not count.
		before := scrapeBridge(t, b)
		var eds []time.Duration
		for k := range pacingIsolated {
			s := 10 + k
			at := time.Now()
			reg.change(t, s)
			eds = append(eds, waitAll(fmt.Sprintf("isolated change %d", k), []int{s}, 20*time.Second).Sub(at))
			time.Sleep(pacingIsolatedEvery - time.Since(at)) // no-op when the change took longer
		}
		slices.Sort(eds)
		r.isolatedEDSP50, r.edsP99 = percentile(eds, 50), percentile(eds, 99)
		d := subtractHist(scrapeBridge(t, b), before)
		r.shareP50, r.shareP99 = histQuantile(d, "mcp_bridge_change_to_send_seconds", 0.5), histQuantile(d, "mcp_bridge_change_to_send_seconds", 0.99)
		if row.adapterShare != "" {
			r.adapterP50, r.adapterP99 = histQuantile(d, row.adapterShare, 0.5), histQuantile(d, row.adapterShare, 0.99)
		}
	}
	if row.burst {
		pacingBurst(t, r, b, cp, reg, waitAll)
	}
	r.took = time.Since(began)
	return r
}

// pacingBurst is phase 2: 20 changes/s for 10 s over 50 services, then the wait for the last state.
func pacingBurst(t *testing.T, r *pacingResult, b *servers.Bridge, cp *servers.ControlPlane, reg pacingRegistry,
	waitAll func(string, []int, time.Duration) time.Time) {
	before := scrapeBridge(t, b)
	rss, err := cp.Istiod.RSS()
	if err != nil {
		t.Fatal(err)
	}
	r.rssBefore, r.rssPeak = rss, rss
	cpu0 := scaleProcCPU(t, cp.Istiod.PID())

	var touched []int
	tick := time.NewTicker(50 * time.Millisecond)
	for k := range 200 {
		<-tick.C
		s := 100 + k%50
		reg.change(t, s)
		if k < 50 {
			touched = append(touched, s)
		}
		if k%10 == 0 {
			if rss, err := cp.Istiod.RSS(); err == nil {
				r.rssPeak = max(r.rssPeak, rss)
			}
		}
	}
	tick.Stop()
	last := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if rss, err := cp.Istiod.RSS(); err == nil && rss > r.rssPeak {
				r.rssPeak = rss
			}
		}
	}()
	seen := waitAll("every change of the burst", touched, time.Minute)
	done <- struct{}{}
	<-done
	r.lagAfterLast = max(seen.Sub(last), 0)
	r.istiodCPUDuringBurst = scaleProcCPU(t, cp.Istiod.PID()) - cpu0
	after := scrapeBridge(t, b)
	r.coalesced = metricTotal(after, "mcp_bridge_mcp_pushes_coalesced_total") - metricTotal(before, "mcp_bridge_mcp_pushes_coalesced_total")
	r.pushes = metricTotal(after, "mcp_bridge_change_to_send_seconds_count") - metricTotal(before, "mcp_bridge_change_to_send_seconds_count")
	r.digestWaits = metricTotal(after, "mcp_bridge_mcp_digest_wait_seconds_count") - metricTotal(before, "mcp_bridge_mcp_digest_wait_seconds_count")
	r.burstShareP99 = histQuantile(subtractHist(after, before), "mcp_bridge_change_to_send_seconds", 0.99)
}

// zkPacing is the ZooKeeper row (and the Istiod memory test's estate): S Dubbo 2 interfaces with
// P providers each; a change registers or deregisters a service's provider 0.
type zkPacing struct {
	addr                 string
	admin                *zk.Conn
	services, perService int
	present              map[[2]int]bool   // (service, instance) registered
	paths                map[[2]int]string // its node (with the timestamp it was created with)
}

func startZKPacing(t *testing.T) pacingRegistry {
	return newZKPacing(t, servers.StartZooKeeper(t), pacingServices, pacingPerService)
}

// newZKPacing registers services x perService providers in z.
func newZKPacing(t *testing.T, z *servers.ZooKeeper, services, perService int) *zkPacing {
	e := &zkPacing{addr: z.Addr(), admin: zktest.Session(t, z.Addr()), services: services, perService: perService,
		present: map[[2]int]bool{}, paths: map[[2]int]string{}}
	var nodes []zktest.Node
	for s := range services {
		for i := range perService {
			e.paths[[2]int{s, i}] = e.node(s, i)
			nodes = append(nodes, zktest.Node{Path: e.paths[[2]int{s, i}]})
			e.present[[2]int{s, i}] = true
		}
	}
	zktest.CreateMany(t, e.admin, nodes)
	return e
}

func (e *zkPacing) config() string {
	return fmt.Sprintf("  - name: %s\n    type: zookeeper\n    zookeeper:\n      servers: [%q]\n", zkRegistryName, e.addr)
}

func (e *zkPacing) iface(s int) string { return fmt.Sprintf("com.example.pace.Svc%04d", s) }
func (e *zkPacing) ip(s, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+i, s/250, 1+s%250)
}
func (e *zkPacing) node(s, i int) string {
	return zktest.ProviderPath("/dubbo", e.iface(s), zkDubbo2URL(e.iface(s), e.ip(s, i)))
}

func (e *zkPacing) cluster(s int) string {
	return outboundCluster(strings.ToLower(e.iface(s)), zkDubboPort, "")
}

func (e *zkPacing) want(s int) []xdsview.Endpoint {
	eps := []xdsview.Endpoint{}
	for i := range e.perService {
		if e.present[[2]int{s, i}] {
			eps = append(eps, xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", e.ip(s, i), zkDubboPort), Weight: zkDefaultWeight})
		}
	}
	return eps
}

// change registers or deregisters provider 0 of service s. Provider nodes are persistent so one
// admin session can do both.
func (e *zkPacing) change(t *testing.T, s int) {
	k := [2]int{s, 0}
	if e.present[k] {
		zktest.Delete(t, e.admin, e.paths[k])
	} else {
		e.paths[k] = e.node(s, 0)
		zktest.Create(t, e.admin, e.paths[k], nil, false)
	}
	e.present[k] = !e.present[k]
}

// scrapeBridge returns the bridge's metrics as series -> value.
func scrapeBridge(t *testing.T, b *servers.Bridge) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(scaleBridgeMetrics(t, b)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
				out[l[:i]] = v
			}
		}
	}
	return out
}

// metricTotal sums every series of a metric name (any labels).
func metricTotal(m map[string]float64, name string) float64 {
	v := 0.0
	for k, x := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			v += x
		}
	}
	return v
}

func subtractHist(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// histQuantile is the upper bound of the bucket holding quantile q of a histogram summed over
// its label sets (buckets keyed by le).
func histQuantile(m map[string]float64, name string, q float64) time.Duration {
	byLE := map[float64]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		le := k[i+4:]
		le = le[:strings.IndexByte(le, '"')]
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		byLE[f] += v
	}
	les := make([]float64, 0, len(byLE))
	for le := range byLE {
		les = append(les, le)
	}
	slices.Sort(les)
	if len(les) == 0 || byLE[les[len(les)-1]] == 0 {
		return 0
	}
	total := byLE[les[len(les)-1]]
	for _, le := range les {
		if byLE[le] >= q*total {
			if math.IsInf(le, 1) {
				return time.Duration(math.MaxInt64)
			}
			return time.Duration(le * float64(time.Second))
		}
	}
	return 0
}
