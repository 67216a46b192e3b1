package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// changeBound is how long a file-registry change may take to reach Istiod's EDS. Typical is about
// 0.3 s: the file registry's 100 ms settle delay, the bridge's 100 ms debounce, Istiod's 100 ms
// debounce (all defaults), plus a push. The bound leaves room for a loaded 2-core CI machine.
const changeBound = 2 * time.Second

// latencyInstance is one instance of the service TestBridgeChangeLatency edits.
type latencyInstance struct {
	ip      string
	weight  uint32
	version string
}

const (
	latencyHost = "latency.file"
	latencyPort = 8080
)

// latencyServices renders the services file: one Spring Cloud style HTTP service.
func latencyServices(insts []latencyInstance) string {
	var b strings.Builder
	b.WriteString("services:\n  - name: latency\n    instances:\n")
	for _, in := range insts {
		fmt.Fprintf(&b, "      - {address: %s, ports: {http: %d}, weight: %d, labels: {version: %s}}\n", in.ip, latencyPort, in.weight, in.version)
	}
	return b.String()
}

// latencyExpected is what the sidecar view must show for insts: the service's cluster and one
// cluster per subset of the DestinationRule (subsets by label version), each with the weights.
func latencyExpected(insts []latencyInstance) map[string][]xdsview.Endpoint {
	want := map[string][]xdsview.Endpoint{
		outboundCluster(latencyHost, latencyPort, ""):   {},
		outboundCluster(latencyHost, latencyPort, "v1"): {},
		outboundCluster(latencyHost, latencyPort, "v2"): {},
	}
	for _, in := range insts {
		ep := xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", in.ip, latencyPort), Weight: in.weight}
		for _, c := range []string{outboundCluster(latencyHost, latencyPort, ""), outboundCluster(latencyHost, latencyPort, in.version)} {
			want[c] = append(want[c], ep)
		}
	}
	return want
}

const latencyRules = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: latency, namespace: latency}
spec:
  host: latency.file
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// TestBridgeChangeLatency is issue 3 test 2: live changes of the services file (an instance
// added, removed, re-weighted, re-labelled) reach Istiod's EDS within changeBound. Each of 50
// changes is timed from the file write to the EDS response that first carries the whole change;
// the bound and the p50/p99 are printed. Istiod and the bridge keep their default debounces.
func TestBridgeChangeLatency(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	insts := []latencyInstance{
		{"127.0.30.1", 100, "v1"}, {"127.0.30.2", 100, "v1"}, {"127.0.30.3", 100, "v2"}, {"127.0.30.4", 100, "v2"},
	}
	services := writeFile(t, dir, "services.yaml", latencyServices(insts))
	rules := writeFile(t, dir, "rules.yaml", latencyRules)
	b := startBridge(t, fileRegistryConfig("latency", services, fmt.Sprintf("staticResources: [%q]\n", rules)))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	want := latencyExpected(insts)
	wantEndpoints(t, view, "the initial endpoints", want, 20*time.Second)

	const changes = 50
	var lat []time.Duration
	kinds := map[string][]time.Duration{}
	next := 10 // last octet of the next instance added
	for i := range changes {
		var kind string
		switch i % 4 {
		case 0:
			kind = "add"
			insts = append(insts, latencyInstance{fmt.Sprintf("127.0.30.%d", next), 100, []string{"v1", "v2"}[next%2]})
			next++
		case 1:
			kind = "weight"
			in := &insts[(i/4)%len(insts)]
			if in.weight == 100 {
				in.weight = uint32(20 + i)
			} else {
				in.weight = 100
			}
		case 2:
			kind = "labels"
			in := &insts[(i/4+1)%len(insts)]
			in.version = map[string]string{"v1": "v2", "v2": "v1"}[in.version]
		case 3:
			// One of five instances: well under the share the bridge's empty protection holds back.
			kind = "remove"
			insts = slices.Delete(insts, 0, 1)
		}
		prev := want
		want = latencyExpected(insts)
		var changed []string
		for c := range want {
			if !slices.Equal(prev[c], want[c]) {
				changed = append(changed, c)
			}
		}
		written := time.Now()
		replaceFile(t, services, latencyServices(insts))
		s := view.WaitFor(t, fmt.Sprintf("change %d (%s)", i, kind), 15*time.Second, func(s *xdsview.Snapshot) error {
			for _, c := range slices.Sorted(maps.Keys(want)) {
				if err := endpointsMatch(s, c, want[c]); err != nil {
					return err
				}
			}
			return nil
		})
		var seen time.Time
		for _, c := range changed {
			if at := s.Changed[xdsview.EDS][c]; at.After(seen) {
				seen = at
			}
		}
		d := seen.Sub(written)
		if d <= 0 {
			t.Fatalf("change %d (%s): clusters %v show no EDS change after the write", i, kind, changed)
		}
		lat = append(lat, d)
		kinds[kind] = append(kinds[kind], d)
		if d > changeBound {
			t.Errorf("change %d (%s) took %v to reach EDS, more than the bound %v", i, kind, d.Round(time.Millisecond), changeBound)
		}
	}
	slices.Sort(lat)
	t.Logf("measure: file-registry change -> Istiod EDS over %d changes (bound %v): p50 %v p99 %v min %v max %v",
		changes, changeBound, percentile(lat, 50).Round(time.Millisecond), percentile(lat, 99).Round(time.Millisecond),
		lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		d := slices.Sorted(slices.Values(kinds[k]))
		t.Logf("measure:   %-6s n=%d p50 %v max %v", k, len(d), percentile(d, 50).Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	if rss, err := cp.Istiod.RSS(); err == nil {
		t.Logf("measure: istiod RSS after %d changes %d MiB", changes, rss>>20)
	}
	if rss, err := servers.RSS(b.PID()); err == nil {
		t.Logf("measure: mcp-bridge RSS after %d changes %d MiB", changes, rss>>20)
	}
}
