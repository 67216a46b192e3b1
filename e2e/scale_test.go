package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// The scale harness (issues 2 and 3): a real bridge and a real Istiod at a chosen size, in
// several endpoint modes one after the other in one run, each measured the same way. Its size and
// pace come from the environment; the defaults are a smoke test small enough for every run:
//
//	MCP_BRIDGE_SCALE=<services>x<instances each>  default 200x5 (docs/benchmarks.md: 10000x10)
//	MCP_BRIDGE_SCALE_FILES=<n>          file registries the estate is split over (default services/50, within 10..100)
//	MCP_BRIDGE_SCALE_CHANGES=<k>        one-instance changes per mode (default 5; 50 with MCP_BRIDGE_SCALE)
//	MCP_BRIDGE_SCALE_INTERVAL=<d>       least time from one change to the next (default 0.4s; 1.5s with MCP_BRIDGE_SCALE)
//	MCP_BRIDGE_SCALE_BOUND=<d>          a change must reach the sidecar's EDS within this (default 2s; 30s over 20k instances)
//	MCP_BRIDGE_SCALE_MODES=<m,...>      of inline, workloadEntry, workloadEntry-1ns (default all three, but not
//	                                    workloadEntry-1ns over the default per-namespace cap of 2,000: Istiod
//	                                    re-lists a namespace's WorkloadEntries on each one's event, docs/scale.md#workloadentries)
//	MCP_BRIDGE_SCALE_SHARDS=<n,...>     mcp.shards values each mode runs with (default 1; docs/scale.md#sharding
//	                                    used 1,2,4,8): Istiod gets one xds:// config source per shard
//
// Changes are injected through the file registry. It re-reads a whole file on a change, so the
// estate is split over several files (one registry each, all writing to the same namespace, or
// to one namespace per file in workloadEntry mode) and each change rewrites one file: the
// bridge's cost per change then includes parsing 1/files of the estate, which the harness
// measures and reports ("file re-parse").

// scaleConfig is the harness's size and pace.
type scaleConfig struct {
	services, per, files, changes int
	interval, bound               time.Duration
	modes                         []string
	shards                        []int // mcp.shards values, each run per mode
	explicit                      bool  // MCP_BRIDGE_SCALE was set: a measurement run, not the smoke test
}

// Modes: the endpoint mode, and for workloadEntry whether WorkloadEntries are spread over one
// namespace per file or all in one namespace.
const (
	modeInline  = "inline"
	modeWE      = "workloadEntry"
	modeWEOneNS = "workloadEntry-1ns"
)

func scaleFromEnv(t *testing.T) scaleConfig {
	t.Helper()
	c := scaleConfig{services: 200, per: 5, changes: 5, interval: 400 * time.Millisecond}
	if s := os.Getenv("MCP_BRIDGE_SCALE"); s != "" {
		a, b, ok := strings.Cut(s, "x")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 3 || m < 1 {
			t.Fatalf("MCP_BRIDGE_SCALE=%q is not <services>x<instances each> (at least 3x1)", s)
		}
		c.services, c.per, c.explicit = n, m, true
		c.changes, c.interval = 50, 1500*time.Millisecond
	}
	// About 50 services per file: re-parsing a file of 200 services x 10 instances takes ~110 ms
	// here, 50 services ~22 ms (see parseCost), and the injection should cost little beside the
	// push. At most 100 files: each file registry holds an inotify instance, and all processes of
	// a user share 128 of them (fs.inotify.max_user_instances); a registry without one polls.
	c.files = min(max(c.services/50, 10), 100)
	c.files = min(scaleEnvInt(t, "MCP_BRIDGE_SCALE_FILES", c.files), c.services)
	c.changes = scaleEnvInt(t, "MCP_BRIDGE_SCALE_CHANGES", c.changes)
	c.interval = scaleEnvDuration(t, "MCP_BRIDGE_SCALE_INTERVAL", c.interval)
	c.bound = 2 * time.Second
	if c.services*c.per > 20000 {
		c.bound = 30 * time.Second
	}
	c.bound = scaleEnvDuration(t, "MCP_BRIDGE_SCALE_BOUND", c.bound)
	c.modes = []string{modeInline, modeWE}
	if c.services*c.per <= translate.DefaultMaxWorkloadEntriesPerNamespace {
		// Over the default cap it is slow, not cheap: 10,000 WorkloadEntries in one namespace took
		// Istiod 2 min to give the sidecar every endpoint, 20,000 took 9m47s.
		c.modes = append(c.modes, modeWEOneNS)
	}
	if s := os.Getenv("MCP_BRIDGE_SCALE_MODES"); s != "" {
		c.modes = strings.Split(s, ",")
		for _, m := range c.modes {
			if m != modeInline && m != modeWE && m != modeWEOneNS {
				t.Fatalf("MCP_BRIDGE_SCALE_MODES: unknown mode %q (want %s, %s or %s)", m, modeInline, modeWE, modeWEOneNS)
			}
		}
	}
	c.shards = []int{1}
	if s := os.Getenv("MCP_BRIDGE_SCALE_SHARDS"); s != "" {
		c.shards = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 64 {
				t.Fatalf("MCP_BRIDGE_SCALE_SHARDS: %q is not a shard count from 1 to 64", f)
			}
			c.shards = append(c.shards, n)
		}
	}
	if c.files < 1 || c.changes < 1 || c.interval <= 0 || c.bound <= 0 {
		t.Fatalf("scale settings out of range: %+v", c)
	}
	return c
}

func scaleEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

func scaleEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return d
}

// TestScale runs the estate through a real bridge and a real Istiod once per mode and prints,
// per mode and as ratios to inline: start-up times, RSS, change -> sidecar EDS latency, CPU per
// change of both processes, bytes per push and Istiod's pushes. It asserts what must hold at any
// size: Istiod converges on every cluster and endpoint, every change reaches EDS within the bound,
// each change re-marshals one resource, and nothing is invalid or dropped.
func TestScale(t *testing.T) {
	sc := scaleFromEnv(t)
	if !sc.explicit {
		t.Parallel() // the smoke test shares the machine; a measurement run (-run TestScale) runs alone
	}
	binary := suite.Build(t, bridgePackage)
	start := time.Now()
	suite.Cluster(t)
	clusterStart := time.Since(start)
	est := newScaleEstate(sc)
	parse := est.parseCost(t)
	t.Logf("measure: scale %dx%d (%d instances) over %d files; %d changes %v apart; shared cluster ready in %v (cold start if this test started it); "+
		"file re-parse (one change's injection cost, in this process) %v for %d services",
		sc.services, sc.per, sc.services*sc.per, sc.files, sc.changes, sc.interval, clusterStart.Round(time.Millisecond),
		parse.Round(10*time.Microsecond), len(est.byFile[0]))

	var results []*scaleResult
	for _, mode := range sc.modes {
		for _, shards := range sc.shards {
			name := mode
			if shards > 1 {
				name = fmt.Sprintf("%s-%dshards", mode, shards)
			}
			t.Run(name, func(t *testing.T) {
				r := runScaleMode(t, sc, est, mode, shards, binary)
				r.mode, r.parse = name, parse
				results = append(results, r)
			})
		}
	}
	printScaleTable(t, sc, results)
}

// scaleEstate is the services, which file each is in, and their Istio names.
type scaleEstate struct {
	services []*registry.Service
	file     []int             // services[i] is in file file[i]
	clusters [][]string        // services[i]'s outbound clusters, by port
	byFile   map[int][]int     // file -> service indexes
	ports    map[string]uint32 // port name -> number (every instance uses these)
	hosts    map[int]string    // service index -> host
}

func newScaleEstate(sc scaleConfig) *scaleEstate {
	e := &scaleEstate{byFile: map[int][]int{}, hosts: map[int]string{},
		ports: map[string]uint32{"dubbo": 20880, "tri": 50051, "http": 8080}}
	fileType, _ := registries.Lookup("file")
	regs := make([]translate.RegistryOptions, sc.files)
	for f := range regs {
		regs[f] = translate.RegistryOptions{Name: scaleRegistry(f), Hosts: fileType.DefaultHosts}
	}
	// Only Host is used: it needs the registries' names and types, not the namespaces.
	tr, err := translate.New(translate.Options{Registries: regs})
	if err != nil {
		panic(fmt.Sprintf("translate options: %v", err)) // constant input: a build defect
	}
	k := 0
	for i := range sc.services {
		f := i % sc.files
		var s *registry.Service
		switch i % 3 {
		case 0: // a Dubbo 2 interface
			s = &registry.Service{Kind: registry.KindDubboInterface, Name: fmt.Sprintf("com.example.biz%d.OrderService%d", i%97, i), Version: "1.0.0",
				Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}}
		case 1: // a Dubbo 3 application, Dubbo protocol and Triple
			s = &registry.Service{Kind: registry.KindDubboApplication, Name: fmt.Sprintf("shop-app-%d", i),
				Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}, {Name: "tri", Protocol: registry.ProtocolTriple}}}
		default: // a Spring Cloud HTTP service
			s = &registry.Service{Kind: registry.KindApplication, Name: fmt.Sprintf("web-%d", i),
				Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
		}
		s.Registry = scaleRegistry(f)
		for j := range sc.per {
			k++
			in := registry.Instance{Address: fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255), Ports: map[string]uint32{}, Weight: 100,
				Labels: scaleLabels(s.Kind, i, j), Locality: registry.Locality{Region: "cn-hangzhou", Zone: fmt.Sprintf("cn-hangzhou-%c", 'a'+j%3)}}
			for _, p := range s.Ports {
				in.Ports[p.Name] = e.ports[p.Name]
			}
			s.Instances = append(s.Instances, in)
		}
		host := tr.Host(s)
		var cl []string
		for _, p := range s.Ports {
			cl = append(cl, outboundCluster(host, int(e.ports[p.Name]), ""))
		}
		e.services = append(e.services, s)
		e.file = append(e.file, f)
		e.clusters = append(e.clusters, cl)
		e.byFile[f] = append(e.byFile[f], i)
		e.hosts[i] = host
	}
	return e
}

func scaleRegistry(f int) string { return fmt.Sprintf("scale-%02d", f) }

// scaleLabels are ten registry labels per instance, as the registries carry them; timestamp and
// pid change at every restart and methods is bulky: translate drops all three.
func scaleLabels(kind registry.Kind, i, j int) map[string]string {
	l := map[string]string{"application": fmt.Sprintf("app-%d", i), "version": fmt.Sprintf("v%d", j%2), "release": "3.2.10",
		"timestamp": fmt.Sprintf("17123456%05d", j), "pid": fmt.Sprint(4000 + j)}
	switch kind {
	case registry.KindDubboInterface:
		l["side"], l["dubbo"], l["anyhost"], l["dubbo.tag"], l["methods"] = "provider", "2.0.2", "true", []string{"stable", "gray"}[j%2], "create,get,list,update,delete"
	case registry.KindDubboApplication:
		l["dubbo.metadata.revision"], l["dubbo.metadata.storage-type"], l["dubbo.tag"], l["methods"], l["side"] = "8a3f6c1d2e", "local", "stable", "create,get,list", "provider"
	default:
		l["preserved.register.source"], l["secure"], l["zone"], l["management.port"], l["team"] = "SPRING_CLOUD", "false", fmt.Sprintf("cn-hangzhou-%c", 'a'+j%3), "8081", "web"
	}
	return l
}

// render writes file f of the estate in the file registry's format.
func (e *scaleEstate) render(f int) string {
	svcs := make([]*registry.Service, 0, len(e.byFile[f]))
	for _, i := range e.byFile[f] {
		svcs = append(svcs, e.services[i])
	}
	return servicesFile(svcs)
}

// servicesFile writes services in the file registry's format (registry/file/example.yaml): each
// service's name, kind, group, version and ports, each instance's address, weight, ports,
// locality and labels.
func servicesFile(svcs []*registry.Service) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, s := range svcs {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n", s.Name, s.Kind)
		if s.Group != "" {
			fmt.Fprintf(&b, "    group: %q\n", s.Group)
		}
		if s.Version != "" {
			fmt.Fprintf(&b, "    version: %q\n", s.Version)
		}
		b.WriteString("    ports: [")
		for n, p := range s.Ports {
			if n > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{name: %s, protocol: %s}", p.Name, p.Protocol)
		}
		b.WriteString("]\n    instances:\n")
		for _, in := range s.Instances {
			fmt.Fprintf(&b, "      - {address: %s, weight: %d, ports: {", in.Address, in.Weight)
			for n, p := range s.Ports {
				if n > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s: %d", p.Name, in.Ports[p.Name])
			}
			fmt.Fprintf(&b, "}, locality: {region: %s, zone: %s}, labels: {", in.Locality.Region, in.Locality.Zone)
			for n, k := range slices.Sorted(maps.Keys(in.Labels)) {
				if n > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s: %q", k, in.Labels[k])
			}
			b.WriteString("}}\n")
		}
	}
	return b.String()
}

// parseCost is what the file registry spends re-reading one file, the injection overhead of a
// change: its own parser, timed here in the test process (CPU time of one parse, best of three).
func (e *scaleEstate) parseCost(t *testing.T) time.Duration {
	t.Helper()
	content := []byte(e.render(0))
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		if _, err := file.Parse(content); err != nil {
			t.Fatalf("the harness wrote a services file its registry rejects: %v", err)
		}
		best = min(best, time.Since(start))
	}
	return best
}

// endpointsOf returns the endpoint addresses of service i on one of its clusters' ports.
func (e *scaleEstate) endpointsOf(i, port int) []string {
	s := e.services[i]
	out := make([]string, 0, len(s.Instances))
	for _, in := range s.Instances {
		out = append(out, fmt.Sprintf("%s:%d", in.Address, in.Ports[s.Ports[port].Name]))
	}
	slices.Sort(out)
	return out
}

// scaleResult is one mode's figures.
type scaleResult struct {
	mode                       string
	ses, wes                   float64
	bridgeReady, istiodReady   time.Duration
	allClusters                time.Duration // Istiod start -> the sidecar has every cluster and endpoint
	bridgeRSS, istiodRSS       int64         // after sync
	bridgeRSSEnd, istiodRSSEnd int64         // after the changes
	bridgeHeap, istiodHeap     [2]float64    // Go heap in use (go_memstats_heap_inuse_bytes) before and after the changes
	istiodRSSHalf              int64         // half-way through the changes: does it keep growing?
	latencies                  []time.Duration
	istiodCPU, bridgeCPU       time.Duration // per change, idle baseline subtracted
	istiodIdle, bridgeIdle     float64       // CPU seconds per second while idle
	sentPerPush, sentPerChange float64
	marshalledPerChange        float64
	pushSeconds                float64 // the bridge's own push time per push
	istiodPushes               map[string]float64
	convergence                float64       // Istiod's mean proxy convergence time over the changes, seconds
	parse                      time.Duration // re-parsing one file: part of the bridge's CPU per change
}

func runScaleMode(t *testing.T, sc scaleConfig, est *scaleEstate, mode string, shards int, binary string) *scaleResult {
	res := &scaleResult{mode: mode, istiodPushes: map[string]float64{}}
	dir := t.TempDir()
	paths := make([]string, sc.files)
	var cfg strings.Builder
	endpointMode := modeWE
	if mode == modeInline {
		endpointMode = modeInline
	}
	fmt.Fprintf(&cfg, "log: {level: warn}\ntranslate:\n  endpointMode: %s\n  maxWorkloadEntriesPerNamespace: %d\nregistries:\n", endpointMode, sc.services*sc.per)
	for f := range paths {
		paths[f] = writeFile(t, dir, scaleRegistry(f)+".yaml", est.render(f))
		ns := "scale"
		if mode == modeWE {
			ns = scaleRegistry(f) // spread: one namespace per file
		}
		fmt.Fprintf(&cfg, "  - {name: %s, type: file, namespace: %s, file: {path: %q}}\n", scaleRegistry(f), ns, paths[f])
	}
	syncTimeout := 60 * time.Second
	if sc.explicit {
		syncTimeout = 20 * time.Minute
	}

	start := time.Now()
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: binary, Config: cfg.String(), ReadyTimeout: syncTimeout, Shards: shards})
	res.bridgeReady = time.Since(start)
	if strings.Contains(b.Log(), "relying on polling") {
		t.Fatalf("a file registry could not watch its file and polls instead, so changes would arrive late: "+
			"inotify instances are exhausted (fs.inotify.max_user_instances is shared by every process of the user); "+
			"lower MCP_BRIDGE_SCALE_FILES (now %d)", sc.files)
	}
	bm := scaleBridgeMetrics(t, b)
	res.ses = metricSum(bm, "mcp_bridge_resources", map[string]string{"kind": "ServiceEntry"})
	res.wes = metricSum(bm, "mcp_bridge_resources", map[string]string{"kind": "WorkloadEntry"})
	if want := float64(sc.services); res.ses != want {
		t.Fatalf("the bridge serves %v ServiceEntries, want %v", res.ses, want)
	}
	if want := float64(sc.services * sc.per); endpointMode == modeWE && res.wes != want {
		t.Fatalf("the bridge serves %v WorkloadEntries, want %v", res.wes, want)
	}

	start = time.Now()
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: b.ConfigSources(), ReadyTimeout: syncTimeout})
	res.istiodReady = time.Since(start)
	view := watchEDS(t, cp.Istiod.GRPCAddr)
	view.wait(t, "every cluster with all its endpoints", syncTimeout, func(w *edsWatch) error {
		for i, cl := range est.clusters {
			for _, c := range cl {
				if !w.clusters[c] {
					return fmt.Errorf("no cluster %s (have %d clusters)", c, len(w.clusters))
				}
				if n := len(w.endpoints[c]); n != len(est.services[i].Instances) {
					return fmt.Errorf("cluster %s has %d endpoints, want %d", c, n, len(est.services[i].Instances))
				}
			}
		}
		return nil
	})
	res.allClusters = time.Since(start)
	view.wait(t, "every endpoint address", time.Second, func(w *edsWatch) error {
		for i, cl := range est.clusters {
			for p, c := range cl {
				got := make([]string, 0, len(w.endpoints[c]))
				for _, ep := range w.endpoints[c] {
					got = append(got, ep.Address)
				}
				if want := est.endpointsOf(i, p); !slices.Equal(got, want) {
					return fmt.Errorf("cluster %s has endpoints %v, want %v", c, got, want)
				}
			}
		}
		return nil
	})
	res.bridgeRSS, res.istiodRSS = scaleRSS(t, b.PID()), scaleRSS(t, cp.Istiod.PID())

	// Idle baseline: what both processes burn doing nothing, over as long as the changes take. It
	// starts once Istiod has finished its start-up work: with 5,000 WorkloadEntries in one
	// namespace Istiod was still busy when the sidecar had every endpoint, the baseline came out
	// above the busy window, and the CPU per change negative.
	scaleWaitIdle(t, "istiod", cp.Istiod.PID(), max(sc.bound*3, 30*time.Second))
	window := time.Duration(sc.changes) * sc.interval
	i0, b0 := scaleProcCPU(t, cp.Istiod.PID()), scaleProcCPU(t, b.PID())
	time.Sleep(window)
	res.istiodIdle = (scaleProcCPU(t, cp.Istiod.PID()) - i0).Seconds() / window.Seconds()
	res.bridgeIdle = (scaleProcCPU(t, b.PID()) - b0).Seconds() / window.Seconds()

	bm0, im0 := scaleBridgeMetrics(t, b), istiodMetrics(t, cp.Istiod)
	res.bridgeHeap[0], res.istiodHeap[0] = metricSum(bm0, "go_memstats_heap_inuse_bytes", nil), metricSum(im0, "go_memstats_heap_inuse_bytes", nil)
	i0, b0 = scaleProcCPU(t, cp.Istiod.PID()), scaleProcCPU(t, b.PID())
	changesStart := time.Now()
	for k := range sc.changes {
		step := time.Now()
		// Spread over files and services; instance k%per of the service alternates its weight.
		i := (k*7919 + 13) % sc.services
		in := &est.services[i].Instances[k%sc.per]
		if in.Weight == 100 {
			in.Weight = uint32(40 + k%50)
		} else {
			in.Weight = 100
		}
		addrs := make([]string, len(est.clusters[i]))
		for p, pt := range est.services[i].Ports {
			addrs[p] = fmt.Sprintf("%s:%d", in.Address, in.Ports[pt.Name])
		}
		want := in.Weight
		written := time.Now()
		replaceFile(t, paths[est.file[i]], est.render(est.file[i]))
		var seen time.Time
		view.wait(t, fmt.Sprintf("change %d (%s weight %d)", k, addrs[0], want), max(sc.bound*3, 30*time.Second), func(w *edsWatch) error {
			latest := time.Time{}
			for p, c := range est.clusters[i] {
				ok := false
				for _, ep := range w.endpoints[c] {
					ok = ok || (ep.Address == addrs[p] && ep.Weight == want)
				}
				if !ok {
					return fmt.Errorf("cluster %s: %s does not have weight %d yet", c, addrs[p], want)
				}
				if at := w.changed[c]; at.After(latest) {
					latest = at
				}
			}
			seen = latest
			return nil
		})
		d := seen.Sub(written)
		res.latencies = append(res.latencies, d)
		if d > sc.bound {
			t.Errorf("change %d (%s of %s) reached EDS after %v, more than the bound %v", k, addrs[0], est.hosts[i], d.Round(time.Millisecond), sc.bound)
		}
		if k == sc.changes/2 {
			res.istiodRSSHalf = scaleRSS(t, cp.Istiod.PID())
		}
		time.Sleep(time.Until(step.Add(sc.interval)))
	}
	took := time.Since(changesStart)
	scale := took.Seconds()
	res.istiodCPU = cpuPerChange(scaleProcCPU(t, cp.Istiod.PID())-i0, res.istiodIdle*scale, sc.changes)
	res.bridgeCPU = cpuPerChange(scaleProcCPU(t, b.PID())-b0, res.bridgeIdle*scale, sc.changes)
	bm1, im1 := scaleBridgeMetrics(t, b), istiodMetrics(t, cp.Istiod)
	res.bridgeRSSEnd, res.istiodRSSEnd = scaleRSS(t, b.PID()), scaleRSS(t, cp.Istiod.PID())
	res.bridgeHeap[1], res.istiodHeap[1] = metricSum(bm1, "go_memstats_heap_inuse_bytes", nil), metricSum(im1, "go_memstats_heap_inuse_bytes", nil)

	delta := func(a, b, name string, labels map[string]string) float64 {
		return metricSum(b, name, labels) - metricSum(a, name, labels)
	}
	sent := delta(bm0, bm1, "mcp_bridge_mcp_sent_bytes_total", nil)
	responses := delta(bm0, bm1, "mcp_bridge_mcp_responses_total", nil)
	res.sentPerChange = sent / float64(sc.changes)
	if responses > 0 {
		res.sentPerPush = sent / responses
	}
	res.marshalledPerChange = delta(bm0, bm1, "mcp_bridge_mcp_resources_marshalled_total", nil) / float64(sc.changes)
	if pushes := delta(bm0, bm1, "mcp_bridge_push_duration_seconds_count", map[string]string{"stage": "total"}); pushes > 0 {
		res.pushSeconds = delta(bm0, bm1, "mcp_bridge_push_duration_seconds_sum", map[string]string{"stage": "total"}) / pushes
	}
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		res.istiodPushes[typ] = delta(im0, im1, "pilot_xds_pushes", map[string]string{"type": typ}) / float64(sc.changes)
	}
	if n := delta(im0, im1, "pilot_proxy_convergence_time_count", nil); n > 0 {
		res.convergence = delta(im0, im1, "pilot_proxy_convergence_time_sum", nil) / n
	}

	// Each change rewrote one instance's weight: exactly one resource (its ServiceEntry inline,
	// its WorkloadEntry otherwise) must have been marshalled again.
	if res.marshalledPerChange != 1 {
		t.Errorf("%v resources marshalled per one-instance change, want 1", res.marshalledPerChange)
	}
	if inv := bridgeInvalid(t, b); len(inv) != 0 {
		t.Errorf("the bridge reports %d invalid resources, first %+v", len(inv), inv[0])
	}
	for _, line := range strings.Split(cp.Istiod.Log(), "\n") {
		for _, drop := range istiodDropLines {
			if strings.Contains(line, drop) {
				t.Errorf("Istiod dropped a resource the bridge sent: %.400s", line)
			}
		}
	}
	lat := slices.Sorted(slices.Values(res.latencies))
	t.Logf("measure: %s: bridge ready %v, istiod ready %v, all clusters %v; RSS bridge %d MiB istiod %d MiB; change->EDS p50 %v p99 %v; CPU/change istiod %v bridge %v",
		mode, res.bridgeReady.Round(time.Millisecond), res.istiodReady.Round(time.Millisecond), res.allClusters.Round(time.Millisecond),
		res.bridgeRSS>>20, res.istiodRSS>>20, percentile(lat, 50).Round(time.Millisecond), percentile(lat, 99).Round(time.Millisecond),
		res.istiodCPU.Round(time.Millisecond), res.bridgeCPU.Round(time.Millisecond))
	return res
}

// scaleWaitIdle waits until the process uses under 5 % of a core over a second, failing the test
// after timeout.
func scaleWaitIdle(t *testing.T, name string, pid int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		c0 := scaleProcCPU(t, pid)
		time.Sleep(time.Second)
		if busy := scaleProcCPU(t, pid) - c0; busy < 50*time.Millisecond {
			t.Logf("%s idle %v after its endpoints were all there", name, time.Since(start).Round(100*time.Millisecond))
			return
		} else if time.Since(start) > timeout {
			t.Fatalf("%s still busy (%v CPU in the last second) %v after its endpoints were all there", name, busy, timeout)
		}
	}
}

// perChange is the CPU per change after subtracting the idle baseline (seconds over the window).
func cpuPerChange(busy time.Duration, idleSeconds float64, changes int) time.Duration {
	return time.Duration((busy.Seconds() - idleSeconds) / float64(changes) * float64(time.Second))
}

func scaleBridgeMetrics(t *testing.T, b *servers.Bridge) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func scaleRSS(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := servers.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat (fields 14 and 15, in clock
// ticks of 1/100 s: USER_HZ is 100 on Linux).
func scaleProcCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatalf("reading CPU time of pid %d: %v", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from its end.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest) // f[0] is field 3 (state)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parsing /proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// printScaleTable logs every mode's figures side by side, with the ratio of each to inline's.
func printScaleTable(t *testing.T, sc scaleConfig, results []*scaleResult) {
	if len(results) == 0 {
		return
	}
	var base *scaleResult
	for _, r := range results {
		if r.mode == modeInline {
			base = r
		}
	}
	type row struct {
		name string
		val  func(*scaleResult) float64
		unit string
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	rows := []row{
		{"ServiceEntries", func(r *scaleResult) float64 { return r.ses }, ""},
		{"WorkloadEntries", func(r *scaleResult) float64 { return r.wes }, ""},
		{"bridge ready", func(r *scaleResult) float64 { return ms(r.bridgeReady) }, "ms"},
		{"istiod ready", func(r *scaleResult) float64 { return ms(r.istiodReady) }, "ms"},
		{"istiod start -> all clusters", func(r *scaleResult) float64 { return ms(r.allClusters) }, "ms"},
		{"bridge RSS after sync", func(r *scaleResult) float64 { return float64(r.bridgeRSS >> 20) }, "MiB"},
		{"istiod RSS after sync", func(r *scaleResult) float64 { return float64(r.istiodRSS >> 20) }, "MiB"},
		{"istiod RSS half-way through changes", func(r *scaleResult) float64 { return float64(r.istiodRSSHalf >> 20) }, "MiB"},
		{"bridge RSS after changes", func(r *scaleResult) float64 { return float64(r.bridgeRSSEnd >> 20) }, "MiB"},
		{"istiod RSS after changes", func(r *scaleResult) float64 { return float64(r.istiodRSSEnd >> 20) }, "MiB"},
		{"bridge Go heap in use before changes", func(r *scaleResult) float64 { return math.Round(r.bridgeHeap[0] / (1 << 20)) }, "MiB"},
		{"bridge Go heap in use after changes", func(r *scaleResult) float64 { return math.Round(r.bridgeHeap[1] / (1 << 20)) }, "MiB"},
		{"istiod Go heap in use before changes", func(r *scaleResult) float64 { return math.Round(r.istiodHeap[0] / (1 << 20)) }, "MiB"},
		{"istiod Go heap in use after changes", func(r *scaleResult) float64 { return math.Round(r.istiodHeap[1] / (1 << 20)) }, "MiB"},
		{"change->EDS p50", func(r *scaleResult) float64 { return ms(scalePct(r, 50)) }, "ms"},
		{"change->EDS p90", func(r *scaleResult) float64 { return ms(scalePct(r, 90)) }, "ms"},
		{"change->EDS p99", func(r *scaleResult) float64 { return ms(scalePct(r, 99)) }, "ms"},
		{"change->EDS max", func(r *scaleResult) float64 { return ms(scalePct(r, 100)) }, "ms"},
		{"istiod CPU per change", func(r *scaleResult) float64 { return ms(r.istiodCPU) }, "ms"},
		{"bridge CPU per change", func(r *scaleResult) float64 { return ms(r.bridgeCPU) }, "ms"},
		{"  of which file re-parse (est.)", func(r *scaleResult) float64 { return ms(r.parse) }, "ms"},
		{"istiod idle CPU", func(r *scaleResult) float64 { return r.istiodIdle * 1e3 }, "ms/s"},
		{"bridge idle CPU", func(r *scaleResult) float64 { return r.bridgeIdle * 1e3 }, "ms/s"},
		{"bridge push time", func(r *scaleResult) float64 { return r.pushSeconds * 1e3 }, "ms"},
		{"bytes sent per push", func(r *scaleResult) float64 { return r.sentPerPush }, "B"},
		{"bytes sent per change", func(r *scaleResult) float64 { return r.sentPerChange }, "B"},
		{"resources marshalled per change", func(r *scaleResult) float64 { return r.marshalledPerChange }, ""},
		{"istiod EDS pushes per change", func(r *scaleResult) float64 { return r.istiodPushes["eds"] }, ""},
		{"istiod CDS pushes per change", func(r *scaleResult) float64 { return r.istiodPushes["cds"] }, ""},
		{"istiod LDS+RDS pushes per change", func(r *scaleResult) float64 { return r.istiodPushes["lds"] + r.istiodPushes["rds"] }, ""},
		{"istiod proxy convergence (mean)", func(r *scaleResult) float64 { return r.convergence * 1e3 }, "ms"},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "scale %dx%d, %d files, %d changes %v apart; ratios are to inline in this run\n", sc.services, sc.per, sc.files, sc.changes, sc.interval)
	fmt.Fprintf(&b, "%-42s", "")
	for _, r := range results {
		fmt.Fprintf(&b, " %18s", r.mode)
		if base != nil && r != base {
			fmt.Fprintf(&b, " %8s", "/inline")
		}
	}
	b.WriteString("\n")
	for _, rw := range rows {
		fmt.Fprintf(&b, "%-42s", rw.name+scaleUnit(rw.unit))
		for _, r := range results {
			fmt.Fprintf(&b, " %18s", scaleFigure(rw.val(r)))
			if base != nil && r != base {
				if bv := rw.val(base); bv != 0 {
					fmt.Fprintf(&b, " %8.2f", rw.val(r)/bv)
				} else {
					fmt.Fprintf(&b, " %8s", "-")
				}
			}
		}
		b.WriteString("\n")
	}
	t.Logf("measure: scale table\n%s", b.String())
}

func scalePct(r *scaleResult, p float64) time.Duration {
	return percentile(slices.Sorted(slices.Values(r.latencies)), p)
}

func scaleUnit(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

func scaleFigure(v float64) string {
	switch {
	case v == float64(int64(v)):
		return strconv.FormatInt(int64(v), 10)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// edsWatch is a sidecar's CDS and EDS view of Istiod, all the harness needs. It stands in for
// xdsview.View because it must be cheap at 100,000 endpoints and time each cluster's change: it
// decodes only clusters and load assignments (LDS is subscribed and ACKed, not decoded, so Istiod
// builds for it what it builds for a sidecar), records when each cluster's endpoints last changed,
// and fails the waits if its stream ends instead of reconnecting.
type edsWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	clusters  map[string]bool               // CDS names
	endpoints map[string][]xdsview.Endpoint // EDS service name -> endpoints sorted by address
	changed   map[string]time.Time          // when a cluster's endpoints last changed
	err       error                         // why the stream ended
	kick      chan struct{}                 // closed and replaced after every response
}

func watchEDS(t *testing.T, addr string) *edsWatch {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &edsWatch{cancel: cancel, done: make(chan struct{}), clusters: map[string]bool{},
		endpoints: map[string][]xdsview.Endpoint{}, changed: map[string]time.Time{}, kick: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-w.done; cc.Close() })
	go func() {
		defer close(w.done)
		err := w.run(ctx, discoveryv3.NewAggregatedDiscoveryServiceClient(cc))
		w.mu.Lock()
		w.err = fmt.Errorf("sidecar stream to %s ended: %w", addr, err)
		close(w.kick)
		w.kick = make(chan struct{})
		w.mu.Unlock()
	}()
	return w
}

func (w *edsWatch) run(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := client.StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	meta, err := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "ISTIO_VERSION": "1.31.0", "CLUSTER_ID": "Kubernetes",
		"INTERCEPTION_MODE": "REDIRECT", "WORKLOAD_NAME": "client", "LABELS": map[string]any{"app": "client"}})
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: xdsview.DefaultNodeID, Metadata: meta}
	acked := map[string]*discoveryv3.DiscoveryRequest{}
	send := func(typ string, names []string, version, nonce string) error {
		req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
		acked[typ] = req
		return st.Send(req)
	}
	for _, typ := range []xdsview.Type{xdsview.CDS, xdsview.LDS} {
		if err := send(string(typ), nil, "", ""); err != nil {
			return err
		}
	}
	var edsNames []string
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		at := time.Now()
		typ := resp.GetTypeUrl()
		switch xdsview.Type(typ) {
		case xdsview.CDS:
			clusters := map[string]bool{}
			var names []string
			for _, a := range resp.GetResources() {
				var c clusterv3.Cluster
				if err := a.UnmarshalTo(&c); err != nil {
					return fmt.Errorf("decoding a cluster: %w", err)
				}
				clusters[c.GetName()] = true
				if c.GetType() == clusterv3.Cluster_EDS {
					names = append(names, cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName()))
				}
			}
			slices.Sort(names)
			w.update(func() { w.clusters = clusters })
			if err := send(typ, nil, resp.GetVersionInfo(), resp.GetNonce()); err != nil {
				return err
			}
			if !slices.Equal(names, edsNames) {
				edsNames = names
				prev := acked[string(xdsview.EDS)]
				if err := send(string(xdsview.EDS), names, prev.GetVersionInfo(), prev.GetResponseNonce()); err != nil {
					return err
				}
			}
		case xdsview.EDS:
			next := map[string][]xdsview.Endpoint{}
			for _, a := range resp.GetResources() {
				var cla endpointv3.ClusterLoadAssignment
				if err := a.UnmarshalTo(&cla); err != nil {
					return fmt.Errorf("decoding a load assignment: %w", err)
				}
				var eps []xdsview.Endpoint
				for _, le := range cla.GetEndpoints() {
					for _, lb := range le.GetLbEndpoints() {
						sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
						eps = append(eps, xdsview.Endpoint{Address: net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
							Weight: lb.GetLoadBalancingWeight().GetValue()})
					}
				}
				slices.SortFunc(eps, func(a, b xdsview.Endpoint) int { return strings.Compare(a.Address, b.Address) })
				next[cla.GetClusterName()] = eps
			}
			w.update(func() {
				for name, eps := range next {
					if old, ok := w.endpoints[name]; !ok || !slices.Equal(old, eps) {
						w.changed[name] = at
					}
					w.endpoints[name] = eps
				}
			})
			if err := send(typ, edsNames, resp.GetVersionInfo(), resp.GetNonce()); err != nil {
				return err
			}
		default: // LDS: ACK only
			if err := send(typ, nil, resp.GetVersionInfo(), resp.GetNonce()); err != nil {
				return err
			}
		}
	}
}

func (w *edsWatch) update(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
	close(w.kick)
	w.kick = make(chan struct{})
}

// peek runs f under the lock, once.
func (w *edsWatch) peek(f func(w *edsWatch)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// wait runs cond under the lock after every response until it returns nil, failing the test
// after timeout with cond's last answer.
func (w *edsWatch) wait(t *testing.T, what string, timeout time.Duration, cond func(w *edsWatch) error) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		err, ended, kick := cond(w), w.err, w.kick
		w.mu.Unlock()
		switch {
		case err == nil:
			return
		case ended != nil:
			t.Fatalf("waiting for %s: %v (%v)", what, err, ended)
		}
		select {
		case <-kick:
		case <-deadline:
			t.Fatalf("waiting for %s: still not there after %v: %v", what, timeout, err)
		}
	}
}
