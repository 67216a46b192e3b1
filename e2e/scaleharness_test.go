package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// The scale harness of issue 15: the real bridge and a real Istiod fed from a real ZooKeeper,
// and in the same run the same resources as custom resources in a real kube-apiserver watched by
// an Istiod of its own (the CRD path, scaleharness_crd_test.go). Every mode runs one after the
// other on one estate and is measured the same way; the results are printed as a table with
// MCP/CRD ratios, written as JSON and plotted (scaleharness_report_test.go). Size and pace come
// from the environment; the defaults are a smoke test (1,000 instances) that runs with the suite:
//
//	MCP_BRIDGE_HARNESS_SCALE=<services>x<instances each>  default 200x5; documented 1000x10, 10000x10
//	MCP_BRIDGE_HARNESS_MODES=<m,...>    of inline, workloadEntry, crd-inline, crd-workloadEntry (default all)
//	MCP_BRIDGE_HARNESS_SHARDS=<n,...>   mcp.shards values the MCP modes run with (default 1)
//	MCP_BRIDGE_HARNESS_RATES=<r,...>    changes per second, one run of changes each (default 1,20)
//	MCP_BRIDGE_HARNESS_CHANGES=<k>      changes per rate (default 4; 500 documented for the large runs)
//	MCP_BRIDGE_HARNESS_BOUND=<d>        every change must reach the sidecar's EDS within this (default 5s)
//	MCP_BRIDGE_HARNESS_PROFILES=<dir>   run the bridge with admin.profiling and save its heap profile
//	                                    after the changes there, <mode>-heap.pprof
//	MCP_BRIDGE_HARNESS_OUT=<dir>        write harness-<instances>.json there and re-plot every
//	                                    harness-*.json of the directory as PNGs (default: a temporary directory, no plots)

type harnessConfig struct {
	services, per int
	modes         []string
	shards        []int
	profiles      string // directory for the bridge's heap profiles ("" = none)
	rates         []float64
	changes       int
	bound         time.Duration
	out           string
	explicit      bool
}

const (
	hModeInline = "inline"
	hModeWE     = "workloadEntry"
	hModeCRDIn  = "crd-inline"
	hModeCRDWE  = "crd-workloadEntry"
)

func harnessFromEnv(t *testing.T) harnessConfig {
	t.Helper()
	c := harnessConfig{services: 200, per: 5, modes: []string{hModeInline, hModeWE, hModeCRDIn, hModeCRDWE},
		shards: []int{1}, rates: []float64{1, 20}, changes: 4, bound: 5 * time.Second}
	if s := os.Getenv("MCP_BRIDGE_HARNESS_SCALE"); s != "" {
		a, b, ok := strings.Cut(s, "x")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 3 || m < 1 {
			t.Fatalf("MCP_BRIDGE_HARNESS_SCALE=%q is not <services>x<instances each> (at least 3x1)", s)
		}
		c.services, c.per, c.explicit = n, m, true
	}
	if s := os.Getenv("MCP_BRIDGE_HARNESS_MODES"); s != "" {
		c.modes = strings.Split(s, ",")
		for _, m := range c.modes {
			if !slices.Contains([]string{hModeInline, hModeWE, hModeCRDIn, hModeCRDWE}, m) {
				t.Fatalf("MCP_BRIDGE_HARNESS_MODES: unknown mode %q (want %s, %s, %s or %s)", m, hModeInline, hModeWE, hModeCRDIn, hModeCRDWE)
			}
		}
	}
	if s := os.Getenv("MCP_BRIDGE_HARNESS_SHARDS"); s != "" {
		c.shards = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				t.Fatalf("MCP_BRIDGE_HARNESS_SHARDS: %q is not a shard count (>= 1)", f)
			}
			c.shards = append(c.shards, n)
		}
	}
	if s := os.Getenv("MCP_BRIDGE_HARNESS_RATES"); s != "" {
		c.rates = nil
		for _, f := range strings.Split(s, ",") {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil || r <= 0 {
				t.Fatalf("MCP_BRIDGE_HARNESS_RATES: %q is not a rate in changes per second (> 0)", f)
			}
			c.rates = append(c.rates, r)
		}
	}
	c.changes = scaleEnvInt(t, "MCP_BRIDGE_HARNESS_CHANGES", c.changes)
	c.bound = scaleEnvDuration(t, "MCP_BRIDGE_HARNESS_BOUND", c.bound)
	c.out = os.Getenv("MCP_BRIDGE_HARNESS_OUT")
	c.profiles = os.Getenv("MCP_BRIDGE_HARNESS_PROFILES")
	if c.changes < 1 || c.bound <= 0 {
		t.Fatalf("MCP_BRIDGE_HARNESS_CHANGES and _BOUND must be positive: %+v", c)
	}
	return c
}

// TestScaleHarness runs every mode on one ZooKeeper estate and reports, per mode: cold start to
// Istiod having every endpoint, change -> sidecar EDS percentiles at each rate, bytes sent and
// resources re-marshalled per change, bridge CPU per change and peak RSS, Istiod CPU per change
// and RSS over the run (and, on the CRD path, the API server's and etcd's CPU per change). It
// asserts what must hold at any size: Istiod gets every cluster with every endpoint, every change
// reaches EDS within the bound, and on the MCP path one change re-marshals one resource.
func TestScaleHarness(t *testing.T) {
	hc := harnessFromEnv(t)
	if !hc.explicit {
		t.Parallel()
	}
	binary := suite.Build(t, bridgePackage)
	suite.Cluster(t) // started here, so that the first MCP mode's Istiod start-up does not include it
	z := servers.StartZooKeeper(t)
	admin := zktest.Connect(t, z.Addr(), 30*time.Second)
	est := newHarnessEstate(t, hc.services, hc.per)
	start := time.Now()
	est.write(t, admin)
	t.Logf("measure: harness %dx%d: %d instances in %d groups written to ZooKeeper in %v",
		hc.services, hc.per, est.instances(), est.groups, time.Since(start).Round(time.Millisecond))

	run := &harnessRun{Services: hc.services, Instances: est.instances(), Groups: est.groups, Changes: hc.changes,
		Rates: hc.rates, Date: time.Now().UTC().Format(time.RFC3339), Machine: harnessMachine()}
	k := 0 // changes so far, over all modes: each picks the next service
	for _, mode := range hc.modes {
		shards := hc.shards
		if strings.HasPrefix(mode, "crd-") {
			shards = []int{1}
		}
		for _, n := range shards {
			name := mode
			if !strings.HasPrefix(mode, "crd-") {
				name = fmt.Sprintf("%s/shards=%d", mode, n)
			}
			t.Run(name, func(t *testing.T) {
				r := runHarnessMode(t, hc, est, admin, z.Addr(), binary, mode, n, &k)
				r.Name = name
				run.Results = append(run.Results, r)
			})
		}
	}
	t.Logf("measure: harness table\n%s", harnessTable(run))
	out := hc.out
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, fmt.Sprintf("harness-%d.json", run.Instances))
	// Runs of one size made one mode at a time (a long 100k run per mode) share the file: a
	// result replaces the earlier one of its name, others are kept.
	if prev, err := readHarnessRun(path); err == nil {
		run = prev.mergedWith(run)
	}
	if err := writeHarnessRun(path, run); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: results written to %s", path)
	if hc.out != "" {
		pngs, err := plotHarnessDir(hc.out)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("measure: plots %v", pngs)
	}
}

// harnessBridgeConfig is the bridge's configuration: one ZooKeeper registry per group, each
// under its own chroot and writing its own namespace, no periodic resync during the run.
func harnessBridgeConfig(est *hEstate, zkAddr, endpointMode string, shards int, profiling bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log: {level: warn}\ntranslate:\n  endpointMode: %s\n", endpointMode)
	if profiling {
		b.WriteString("admin: {profiling: true}\n")
	}
	if shards > 1 {
		// mcp.shards; StartBridge reads it and gives every shard a free port.
		fmt.Fprintf(&b, "mcp:\n  shards: %d\n", shards)
	}
	b.WriteString("registries:\n")
	for g := range est.groups {
		fmt.Fprintf(&b, "  - {name: %s, type: zookeeper, namespace: %s, zookeeper: {servers: [%q], chroot: /%s, resyncInterval: 24h}}\n",
			harnessGroupName(g), harnessGroupName(g), zkAddr, harnessGroupName(g))
	}
	return b.String()
}

// shardAddrs are the MCP listeners of a bridge with n shards.
func shardAddrs(b *servers.Bridge, n int) []string {
	// StartBridge gives every shard a free port (--mcp-shard-addrs), so they need not be consecutive.
	if len(b.MCPAddrs) != n {
		panic(fmt.Sprintf("bridge has %d MCP listeners, want %d", len(b.MCPAddrs), n))
	}
	return b.MCPAddrs
}

// harnessMode is one mode's running processes.
type harnessMode struct {
	hc       harnessConfig
	est      *hEstate
	admin    *zk.Conn
	bridge   *servers.Bridge
	view     *edsWatch
	writer   *crdWriter // the CRD path's, nil on the MCP path
	procs    map[string]int
	k        *int // changes so far over the run: each picks the next service
	inlineSE bool // endpoints inline in ServiceEntries (else WorkloadEntries)
}

func runHarnessMode(t *testing.T, hc harnessConfig, est *hEstate, admin *zk.Conn, zkAddr, binary, mode string, shards int, k *int) *harnessResult {
	crd := strings.HasPrefix(mode, "crd-")
	endpointMode := strings.TrimPrefix(mode, "crd-")
	res := &harnessResult{Mode: endpointMode, CRD: crd, Shards: shards}
	syncTimeout := 90 * time.Second
	if hc.explicit {
		syncTimeout = 30 * time.Minute
	}

	start := time.Now()
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: binary, Config: harnessBridgeConfig(est, zkAddr, endpointMode, shards, hc.profiles != ""), ReadyTimeout: syncTimeout})
	res.BridgeReadyMs = msOf(time.Since(start))
	bm := scaleBridgeMetrics(t, b)
	res.ServiceEntries = metricSum(bm, "mcp_bridge_resources", map[string]string{"kind": "ServiceEntry"})
	res.WorkloadEntries = metricSum(bm, "mcp_bridge_resources", map[string]string{"kind": "WorkloadEntry"})
	if want := float64(len(est.services)); res.ServiceEntries != want {
		t.Fatalf("the bridge serves %v ServiceEntries, want %v (its log: %s)", res.ServiceEntries, want, b.LogPath)
	}
	if want := float64(est.instances()); endpointMode == hModeWE && res.WorkloadEntries != want {
		t.Fatalf("the bridge serves %v WorkloadEntries, want %v", res.WorkloadEntries, want)
	}

	m := &harnessMode{hc: hc, est: est, admin: admin, bridge: b, k: k, inlineSE: endpointMode == hModeInline}
	var cp *servers.ControlPlane
	if crd {
		c := servers.StartCluster(t) // private: no other test's Istiod sees these objects
		for g := range est.groups {
			if err := c.API.CreateNamespace(t.Context(), harnessGroupName(g)); err != nil {
				t.Fatal(err)
			}
		}
		setup := time.Now()
		m.writer = startCRDWriter(t, c.API, []string{b.MCPAddr})
		m.writer.waitSynced(t, syncTimeout)
		res.CRSetupMs = msOf(time.Since(setup))
		n, _ := m.writer.stats()
		t.Logf("measure: %d custom resources written in %v", n, time.Since(setup).Round(time.Millisecond))
		start = time.Now()
		cp = &servers.ControlPlane{Cluster: c, Istiod: servers.StartIstiod(t, servers.IstiodOptions{API: c.API, ReadyTimeout: syncTimeout})}
	} else {
		var sources []servers.ConfigSource
		for _, a := range shardAddrs(b, shards) {
			sources = append(sources, servers.ConfigSource{Address: "xds://" + a})
		}
		start = time.Now()
		cp = suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: sources, ReadyTimeout: syncTimeout})
	}
	res.IstiodReadyMs = msOf(time.Since(start))
	rss := sampleRSS(cp.Istiod.PID(), start)
	defer rss.stop()
	m.view = watchEDS(t, cp.Istiod.GRPCAddr)
	harnessWaitAll(t, m.view, est, syncTimeout)
	res.ColdStartMs = msOf(time.Since(start))

	scaleWaitIdle(t, "istiod", cp.Istiod.PID(), max(hc.bound*3, 30*time.Second))
	m.procs = map[string]int{"istiod": cp.Istiod.PID(), "bridge": b.PID()}
	if crd {
		m.procs["apiserver"], m.procs["etcd"] = cp.API.PID(), cp.Etcd.PID()
	}
	// Idle baseline: what the processes burn doing nothing, subtracted from the CPU per change.
	idle := time.Second
	if hc.explicit {
		idle = 10 * time.Second
	}
	c0 := procCPUs(t, m.procs)
	time.Sleep(idle)
	res.IdleCPUms = map[string]float64{}
	for name, d := range procCPUs(t, m.procs) {
		res.IdleCPUms[name] = (d - c0[name]).Seconds() / idle.Seconds() * 1e3
	}

	for _, rate := range hc.rates {
		res.Rates = append(res.Rates, m.runRate(t, rate, res.IdleCPUms))
	}
	res.IstiodRSSMiB = rss.stop()
	res.BridgePeakRSSMiB = float64(peakRSS(t, b.PID())) / (1 << 20)
	res.BridgeRSSMiB = float64(procStatusKB(t, b.PID(), "VmRSS:")) / (1 << 10)
	res.BridgeHeapMiB = metricSum(scaleBridgeMetrics(t, b), "go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	if hc.profiles != "" {
		saveBridgeHeapProfile(t, b, filepath.Join(hc.profiles, strings.ReplaceAll(mode, "/", "-")+fmt.Sprintf("-shards%d-heap.pprof", shards)))
	}
	res.IstiodPeakRSSMiB = float64(peakRSS(t, cp.Istiod.PID())) / (1 << 20)
	if m.writer != nil {
		res.CRWrites, res.CRBytes = m.writer.stats()
	}
	if inv := bridgeInvalid(t, b); len(inv) != 0 {
		t.Errorf("the bridge reports %d invalid resources, first %+v", len(inv), inv[0])
	}
	for _, line := range strings.Split(cp.Istiod.Log(), "\n") {
		for _, drop := range istiodDropLines {
			if strings.Contains(line, drop) {
				t.Errorf("Istiod dropped a resource: %.400s", line)
			}
		}
	}
	return res
}

// harnessWaitAll waits until the sidecar has every cluster with every endpoint address.
func harnessWaitAll(t *testing.T, view *edsWatch, est *hEstate, timeout time.Duration) {
	t.Helper()
	view.wait(t, "every cluster with all its endpoints", timeout, func(w *edsWatch) error {
		for _, s := range est.services {
			for p, c := range s.clusters {
				if !w.clusters[c] {
					return fmt.Errorf("no cluster %s (have %d clusters)", c, len(w.clusters))
				}
				eps := w.endpoints[c]
				if len(eps) != len(s.insts) {
					return fmt.Errorf("cluster %s has %d endpoints, want %d", c, len(eps), len(s.insts))
				}
				for j, in := range s.insts {
					want := fmt.Sprintf("%s:%d", in.addr, s.ports[p])
					if !slices.ContainsFunc(eps, func(e xdsview.Endpoint) bool { return e.Address == want }) {
						return fmt.Errorf("cluster %s lacks endpoint %d (%s)", c, j, want)
					}
				}
			}
		}
		return nil
	})
}

// runRate makes hc.changes changes at rate per second, each to another Dubbo service, and waits
// for every one to reach the sidecar's EDS. A change's latency is from its ZooKeeper write to the
// EDS response that first carried the new weight on every port of the service.
func (m *harnessMode) runRate(t *testing.T, rate float64, idleMs map[string]float64) harnessRate {
	t.Helper()
	rr := harnessRate{Rate: rate, CPUPerChangeMs: map[string]float64{}}
	type change struct {
		i, j    int
		weight  uint32
		written time.Time
	}
	pending := make([]change, 0, m.hc.changes)
	every := time.Duration(float64(time.Second) / rate)
	bm0 := scaleBridgeMetrics(t, m.bridge)
	cpu0 := procCPUs(t, m.procs)
	var crd0 int
	var crdB0 int64
	if m.writer != nil {
		crd0, crdB0 = m.writer.stats()
	}
	seen := []time.Time{}
	mark := func(w *edsWatch) error {
		var missing error
		for n, c := range pending {
			if !seen[n].IsZero() {
				continue
			}
			s := m.est.services[c.i]
			latest, ok := time.Time{}, true
			for p, cl := range s.clusters {
				addr := fmt.Sprintf("%s:%d", s.insts[c.j].addr, s.ports[p])
				if !slices.ContainsFunc(w.endpoints[cl], func(e xdsview.Endpoint) bool { return e.Address == addr && e.Weight == c.weight }) {
					ok = false
					if missing == nil {
						missing = fmt.Errorf("cluster %s: %s does not have weight %d yet", cl, addr, c.weight)
					}
					break
				}
				latest = maxTime(latest, w.changed[cl])
			}
			// An update from before the write cannot be the one that brought it (the same
			// instance changed back and forth within the rate).
			if ok && !latest.Before(c.written) {
				seen[n] = latest
			}
		}
		return missing
	}
	start := time.Now()
	for n := range m.hc.changes {
		time.Sleep(time.Until(start.Add(time.Duration(n) * every)))
		m.view.peek(func(w *edsWatch) { _ = mark(w) })
		i := m.est.pick(*m.k)
		j := *m.k % len(m.est.services[i].insts)
		written := time.Now()
		w := m.est.change(t, m.admin, i, j, *m.k)
		m.view.peek(func(*edsWatch) {
			pending = append(pending, change{i: i, j: j, weight: w, written: written})
			seen = append(seen, time.Time{})
		})
		*m.k++
	}
	// A change is seen when its cluster first carries its weight: the time of that cluster's
	// update is taken then, not at the end, because a later change to the same service (the
	// pick can land on one service twice in a rate at small sizes) moves the cluster's time on.
	// mark runs between the changes as well as in the final wait, so a change is timed by the
	// update that brought it, not by a later one.
	m.view.wait(t, fmt.Sprintf("%d changes at %v/s", m.hc.changes, rate), max(m.hc.bound*3, 30*time.Second), mark)
	window := time.Since(start)
	for name, busy := range procCPUs(t, m.procs) {
		rr.CPUPerChangeMs[name] = ((busy-cpu0[name]).Seconds()*1e3 - idleMs[name]*window.Seconds()) / float64(len(pending))
	}
	bm1 := scaleBridgeMetrics(t, m.bridge)
	delta := func(name string, labels map[string]string) float64 {
		return metricSum(bm1, name, labels) - metricSum(bm0, name, labels)
	}
	changes := float64(len(pending))
	rr.SentBytesPerChange = delta("mcp_bridge_mcp_sent_bytes_total", nil) / changes
	rr.MarshalledPerChange = delta("mcp_bridge_mcp_resources_marshalled_total", nil) / changes
	rr.ResponsesPerChange = delta("mcp_bridge_mcp_responses_total", nil) / changes
	if m.writer != nil {
		n, b := m.writer.stats()
		rr.CRWritesPerChange, rr.CRBytesPerChange = float64(n-crd0)/changes, float64(b-crdB0)/changes
	}
	for n, c := range pending {
		d := seen[n].Sub(c.written)
		rr.LatencyMs = append(rr.LatencyMs, msOf(d))
		if d > m.hc.bound {
			t.Errorf("change %d (%s) at %v/s reached EDS after %v, more than the bound %v", n, m.est.services[c.i].host, rate, d.Round(time.Millisecond), m.hc.bound)
		}
		if m.writer != nil {
			// The CRD path's own share: from the API write to EDS.
			key := "host:" + m.est.services[c.i].host
			if !m.inlineSE {
				key = "addr:" + m.est.services[c.i].insts[c.j].addr
			}
			if at := m.writer.lastWrite(key); !at.IsZero() {
				rr.FromAPIWriteMs = append(rr.FromAPIWriteMs, msOf(seen[n].Sub(at)))
			}
		}
	}
	// On the MCP path a one-instance change re-marshals one resource (its ServiceEntry inline, its
	// WorkloadEntry otherwise); batches at a high rate may merge changes, never add resources.
	if m.writer == nil && rr.MarshalledPerChange > 1 {
		t.Errorf("%v resources marshalled per one-instance change at %v/s, want at most 1", rr.MarshalledPerChange, rate)
	}
	return rr
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// procCPUs is each named process's CPU time so far.
func procCPUs(t *testing.T, procs map[string]int) map[string]time.Duration {
	t.Helper()
	out := make(map[string]time.Duration, len(procs))
	for name, pid := range procs {
		out[name] = scaleProcCPU(t, pid)
	}
	return out
}

// peakRSS is a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	return procStatusKB(t, pid, "VmHWM:") << 10
}

// procStatusKB is the kB figure of one field ("VmRSS:", "VmHWM:") of /proc/<pid>/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/status: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parsing %s %q of pid %d: %v", field, rest, pid, err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// saveBridgeHeapProfile writes the bridge's heap profile (admin.profiling) to path.
func saveBridgeHeapProfile(t *testing.T, b *servers.Bridge, path string) {
	t.Helper()
	resp, err := http.Get("http://" + b.AdminAddr + "/debug/pprof/heap")
	if err != nil {
		t.Fatalf("bridge heap profile: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bridge heap profile: status %d, %v", resp.StatusCode, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: bridge heap profile written to %s", path)
}

// rssSampler records a process's RSS every 500 ms: Istiod's RSS over the run.
type rssSampler struct {
	once    sync.Once
	done    chan struct{}
	mu      sync.Mutex
	samples [][2]float64 // seconds since start, MiB
}

func sampleRSS(pid int, start time.Time) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := servers.RSS(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, [2]float64{time.Since(start).Seconds(), float64(n) / (1 << 20)})
				s.mu.Unlock()
			}
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples.
func (s *rssSampler) stop() [][2]float64 {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}
