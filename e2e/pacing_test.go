package e2e

import (
	"bufio"
	"fmt"
	"math"
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
	// ZooKeeper changes at 1k services x 10 inline (the goal is 10 ms; the histogram's bucket
	// holding the p99 is compared, and the bound leaves room for a loaded 2-core machine).
	bridgeShareP99Bound = 50 * time.Millisecond
	// pacedLagBound bounds, under 20 changes/s, how long after the last change the sidecar's EDS
	// shows every change (digest pacing).
	pacedLagBound = 15 * time.Second
	// pacedRSSRatio bounds Istiod's peak RSS during the burst over its RSS before it (digest).
	// Measured x2.17 (ACK pacing x3.28 from a lower start, similar absolute peak): not flat; see
	// docs/benchmarks.md, "Istiod-paced pushes".
	pacedRSSRatio = 2.75
)

// pacingEstate is S Dubbo 2 interfaces with P providers each in ZooKeeper.
type pacingEstate struct {
	services, perService int
	present              map[[2]int]bool // (service, instance) registered
}

func (e *pacingEstate) iface(s int) string { return fmt.Sprintf("com.example.pace.Svc%04d", s) }
func (e *pacingEstate) host(s int) string  { return strings.ToLower(e.iface(s)) }
func (e *pacingEstate) ip(s, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+i, s/250, 1+s%250)
}
func (e *pacingEstate) node(s, i int) string {
	return zktest.ProviderPath("/dubbo", e.iface(s), zkDubbo2URL(e.iface(s), e.ip(s, i)))
}

// want is the expected EDS of service s's dubbo cluster.
func (e *pacingEstate) want(s int) []xdsview.Endpoint {
	eps := []xdsview.Endpoint{}
	for i := range e.perService {
		if e.present[[2]int{s, i}] {
			eps = append(eps, xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", e.ip(s, i), zkDubboPort), Weight: zkDefaultWeight})
		}
	}
	return eps
}

// toggle registers or deregisters instance 0 of service s. Provider nodes are persistent so one
// admin session can do both; the node's path (with its timestamp) is remembered.
func (e *pacingEstate) toggle(t *testing.T, c *zk.Conn, paths map[[2]int]string, s int) {
	k := [2]int{s, 0}
	if e.present[k] {
		zktest.Delete(t, c, paths[k])
	} else {
		paths[k] = e.node(s, 0)
		zktest.Create(t, c, paths[k], nil, false)
	}
	e.present[k] = !e.present[k]
}

type pacingResult struct {
	mode                   string
	rssBefore, rssPeak     int64
	lagAfterLast           time.Duration
	shareP50, shareP99     time.Duration // bucket upper bounds, isolated changes
	burstShareP99          time.Duration
	coalesced, pushes      float64
	digestWaits            float64
	istiodCPUDuringBurst   time.Duration
	isolatedEDSP50, edsP99 time.Duration
}

// TestIstiodPacedPushes is issue 15's "Istiod-paced pushes" and "no added latency for an
// isolated change", with a real ZooKeeper, the real bridge and a real Istiod: 1,000 Dubbo
// interfaces x 10 providers (inline endpoints). Phase 1: isolated changes one per second, the
// bridge's own share (registry event -> response written) at p99 under bridgeShareP99Bound.
// Phase 2: 20 changes/s for 10 s, faster than Istiod digests them at this size: with digest
// pacing the sidecar's EDS shows every change within pacedLagBound of the last one, and Istiod's
// RSS stays within pacedRSSRatio of where it was; the same burst against ACK pacing (a second
// bridge and Istiod, same registry) is measured for comparison.
func TestIstiodPacedPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Istiods with 10k endpoints each")
	}
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	est := &pacingEstate{services: 1000, perService: 10, present: map[[2]int]bool{}}
	paths := map[[2]int]string{}
	var nodes []zktest.Node
	for s := range est.services {
		for i := range est.perService {
			paths[[2]int{s, i}] = est.node(s, i)
			nodes = append(nodes, zktest.Node{Path: paths[[2]int{s, i}]})
			est.present[[2]int{s, i}] = true
		}
	}
	zktest.CreateMany(t, admin, nodes)

	var results []*pacingResult
	for _, mode := range []string{"digest", "ack"} {
		results = append(results, runPacing(t, z, admin, est, paths, mode, mode == "digest"))
	}
	for _, r := range results {
		t.Logf("measure: pacing %-6s isolated: bridge share p50<=%v p99<=%v, change->EDS p50 %v p99 %v | 20/s burst: lag after last %v, "+
			"bridge share p99<=%v, pushes %v coalesced %v digest waits %v, istiod RSS %d -> peak %d MiB (x%.2f), istiod CPU %v",
			r.mode, r.shareP50, r.shareP99, r.isolatedEDSP50, r.edsP99, r.lagAfterLast.Round(time.Millisecond), r.burstShareP99,
			r.pushes, r.coalesced, r.digestWaits, r.rssBefore>>20, r.rssPeak>>20, float64(r.rssPeak)/float64(r.rssBefore),
			r.istiodCPUDuringBurst.Round(time.Millisecond))
	}
	d := results[0]
	if d.shareP99 > bridgeShareP99Bound {
		t.Errorf("isolated changes: the bridge's share p99 <= %v, over the bound %v", d.shareP99, bridgeShareP99Bound)
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
}

func runPacing(t *testing.T, z *servers.ZooKeeper, admin *zk.Conn, est *pacingEstate, paths map[[2]int]string, mode string, isolated bool) *pacingResult {
	r := &pacingResult{mode: mode}
	mon := servers.FreePort(t)
	cfg := fmt.Sprintf(`registries:
  - name: %s
    type: zookeeper
    zookeeper:
      servers: [%q]
# Short debounces, so that the merge layer emits each change of the 20/s burst and the MCP
# server's pacing is what stands between them and Istiod.
debounce: {quiet: 10ms, max: 50ms}
mcp:
  pacing: {mode: %s, metricsPort: %d}
`, zkRegistryName, z.Addr(), mode, mon)
	b := startBridge(t, cfg)
	defer b.Stop(5 * time.Second)
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}},
		MonitoringPort: mon, ReadyTimeout: 3 * time.Minute})
	defer cp.Istiod.Stop(5 * time.Second)
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	defer view.Close()
	cluster := func(s int) string { return outboundCluster(est.host(s), zkDubboPort, "") }
	waitAll := func(what string, services []int, timeout time.Duration) time.Time {
		var seen time.Time
		view.WaitFor(t, what, timeout, func(snap *xdsview.Snapshot) error {
			seen = time.Time{}
			for _, s := range services {
				if err := endpointsMatch(snap, cluster(s), est.want(s)); err != nil {
					return err
				}
				if at := snap.Changed[xdsview.EDS][cluster(s)]; at.After(seen) {
					seen = at
				}
			}
			return nil
		})
		return seen
	}
	waitAll("every service's endpoints", []int{0, est.services / 2, est.services - 1}, 3*time.Minute)
	time.Sleep(2 * time.Second) // let Istiod's start-up pushes settle before measuring

	if isolated {
		var eds []time.Duration
		for k := range 15 {
			s := 10 + k
			at := time.Now()
			est.toggle(t, admin, paths, s)
			eds = append(eds, waitAll(fmt.Sprintf("isolated change %d", k), []int{s}, 20*time.Second).Sub(at))
			time.Sleep(time.Second)
		}
		slices.Sort(eds)
		r.isolatedEDSP50, r.edsP99 = percentile(eds, 50), percentile(eds, 99)
		m := scrapeBridge(t, b)
		r.shareP50, r.shareP99 = histQuantile(m, "mcp_bridge_change_to_send_seconds", 0.5), histQuantile(m, "mcp_bridge_change_to_send_seconds", 0.99)
	}
	before := scrapeBridge(t, b)
	rss, err := cp.Istiod.RSS()
	if err != nil {
		t.Fatal(err)
	}
	r.rssBefore, r.rssPeak = rss, rss
	cpu0 := scaleProcCPU(t, cp.Istiod.PID())

	// 20 changes/s for 10 s over 50 services, then wait for the last state.
	var touched []int
	tick := time.NewTicker(50 * time.Millisecond)
	for k := range 200 {
		<-tick.C
		s := 100 + k%50
		est.toggle(t, admin, paths, s)
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
	return r
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
