package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// scopeIfaces are the Dubbo 2 interfaces of TestBridgeSidecarScopes, hosts their lower-cased names.
var scopeIfaces = []string{"com.example.scope.Orders", "com.example.scope.Stock", "com.example.scope.Billing"}

const scopeConsumer = "scope-web"

// scopeConsumerPath is where a Dubbo 2 consumer of iface in application app registers itself:
// <root>/<interface>/consumers/<encoded consumer URL>, ephemeral in its session.
func scopeConsumerPath(iface, app, ip string) string {
	return "/dubbo/" + iface + "/consumers/" + zktest.JavaURLEncode(fmt.Sprintf(
		"consumer://%s/%s?application=%s&category=consumers&check=false&dubbo=2.0.2&interface=%s&methods=get,put&pid=77&release=2.7.23&side=consumer&timestamp=%d",
		ip, iface, app, iface, time.Now().UnixMilli()))
}

// scopeFillers is how many more Dubbo 2 services the registry holds, none consumed by the
// consumer: what its scope saves it. MCP_BRIDGE_SCOPE_SERVICES overrides the default 300
// (docs/benchmarks.md has the 1k and 10k figures).
func scopeFillers(t *testing.T) int {
	n := 300
	if v := os.Getenv("MCP_BRIDGE_SCOPE_SERVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			t.Fatalf("MCP_BRIDGE_SCOPE_SERVICES=%q: want a count", v)
		}
	}
	return n
}

// TestBridgeSidecarScopes is issue 14's Sidecar scope test through the real Istiod: Dubbo 2
// providers and a consumer application registered in a real ZooKeeper as Dubbo does (consumers/
// nodes), sidecarScopes on; a sidecar of the consumer (node metadata NAMESPACE zk, LABELS app:
// scope-web, which Istiod matches the Sidecar's workloadSelector against when no pod answers for
// the proxy) gets the clusters of the services it consumes and none of the others, while an
// unscoped sidecar gets them all; a new consumers/ node widens the scope (measured, bound 5 s); a
// consumer node that goes narrows nothing; and the bytes Istiod sends either sidecar (CDS, EDS).
func TestBridgeSidecarScopes(t *testing.T) {
	t.Parallel()
	z, admin, _, cp, unscoped := zkStartWith(t, "inline", "sidecarScopes:\n  enabled: true\n")
	proc := zktest.Session(t, z.Addr())
	consumerProc := zktest.Session(t, z.Addr())
	hosts := make([]string, len(scopeIfaces))
	for i, iface := range scopeIfaces {
		hosts[i] = strings.ToLower(iface)
		zktest.Create(t, proc, zktest.ProviderPath("/dubbo", iface, zkDubbo2URL(iface, fmt.Sprintf("127.0.48.%d", i+1))), nil, true)
	}
	fillers := scopeFillers(t)
	var nodes []zktest.Node
	for i := range fillers {
		iface := fmt.Sprintf("com.example.fill.Svc%05d", i)
		nodes = append(nodes, zktest.Node{Path: zktest.ProviderPath("/dubbo", iface, zkDubbo2URL(iface, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)))})
	}
	zktest.CreateMany(t, admin, nodes)
	orders := zktest.Node{Path: scopeConsumerPath(scopeIfaces[0], scopeConsumer, "127.0.49.1")}
	zktest.Create(t, consumerProc, orders.Path, nil, true)

	cluster := func(i int) string { return outboundCluster(hosts[i], zkDubboPort, "") }
	outbound := func(s *xdsview.Snapshot) int { return len(xdsview.ClusterNames(s, "outbound|")) }
	big := 120*time.Second + time.Duration(fillers)*20*time.Millisecond // 10k services on a loaded 2-core machine
	unscoped.WaitFor(t, "every service's cluster in an unscoped sidecar", big, func(s *xdsview.Snapshot) error {
		if n := len(xdsview.ClusterNames(s, "outbound|20880||com.example.")); n < fillers+len(hosts) {
			return fmt.Errorf("%d of %d clusters", n, fillers+len(hosts))
		}
		return nil
	})

	scopedNode := xdsview.Options{NodeID: "sidecar~127.0.49.1~scope-web-7c9f.zk~zk.svc.cluster.local",
		Metadata: map[string]any{"NAMESPACE": "zk", "LABELS": map[string]any{"app": scopeConsumer}}}
	scoped := xdsview.Connect(t, cp.Istiod.GRPCAddr, scopedNode)
	// wantScope waits until the consumer's sidecar has exactly the clusters of hosts[i] for i in
	// want among this test's hosts, and no filler's, and returns when it first did.
	wantScope := func(what string, want ...int) time.Time {
		t.Helper()
		var seen time.Time
		scoped.WaitFor(t, what, 30*time.Second, func(s *xdsview.Snapshot) error {
			var got []int
			for i := range hosts {
				if _, ok := s.Clusters[cluster(i)]; ok {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("clusters of %v (want %v)", got, want)
			}
			if n := len(xdsview.ClusterNames(s, "outbound|20880||com.example.fill.")); n > 0 {
				return fmt.Errorf("%d clusters of services it does not consume", n)
			}
			for _, i := range want {
				seen = latest(seen, s.Changed[xdsview.CDS][cluster(i)])
			}
			return nil
		})
		return seen
	}
	wantScope("the consumer's sidecar sees only Orders", 0)

	t.Run("bytes", func(t *testing.T) {
		// Fresh connections once the state settled: what Istiod sends a sidecar to start with.
		full := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{NodeID: "sidecar~127.0.49.2~other-1.zk~zk.svc.cluster.local",
			Metadata: map[string]any{"NAMESPACE": "zk", "LABELS": map[string]any{"app": "not-a-consumer"}}})
		lean := xdsview.Connect(t, cp.Istiod.GRPCAddr, scopedNode)
		var nFull, nLean int
		full.WaitFor(t, "an unscoped sidecar's first push", big, func(s *xdsview.Snapshot) error {
			if nFull = outbound(s); len(s.Endpoints) < fillers+len(hosts) {
				return fmt.Errorf("%d clusters with endpoints", len(s.Endpoints))
			}
			return nil
		})
		lean.WaitFor(t, "a scoped sidecar's first push", 30*time.Second, func(s *xdsview.Snapshot) error {
			if _, ok := s.Endpoints[cluster(0)]; !ok {
				return fmt.Errorf("no endpoints of %s yet", cluster(0))
			}
			nLean = outbound(s)
			return nil
		})
		fs, ls := full.Stats(), lean.Stats()
		t.Logf("measure: %d registry services: unscoped sidecar %d outbound clusters, CDS %d B, EDS %d B; scoped (1 consumed) %d outbound clusters, CDS %d B, EDS %d B",
			fillers+len(hosts), nFull, fs[xdsview.CDS].Bytes, fs[xdsview.EDS].Bytes, nLean, ls[xdsview.CDS].Bytes, ls[xdsview.EDS].Bytes)
		if ls[xdsview.CDS].Bytes*5 > fs[xdsview.CDS].Bytes || nLean >= nFull {
			t.Errorf("the scoped sidecar's CDS (%d B, %d clusters) is not much smaller than the unscoped one's (%d B, %d clusters)",
				ls[xdsview.CDS].Bytes, nLean, fs[xdsview.CDS].Bytes, nFull)
		}
	})

	t.Run("a new consumption widens the scope", func(t *testing.T) {
		at := time.Now()
		zktest.Create(t, consumerProc, scopeConsumerPath(scopeIfaces[1], scopeConsumer, "127.0.49.1"), nil, true)
		seen := wantScope("Stock added to the consumer's scope", 0, 1)
		d := seen.Sub(at)
		t.Logf("measure: new consumers/ node -> the consumer's sidecar gets the cluster: %v", d.Round(time.Millisecond))
		if d > 5*time.Second {
			t.Errorf("the scope widened %v after the new consumption, bound 5s", d)
		}
	})

	t.Run("never narrower than what was seen", func(t *testing.T) {
		// The consumer's Orders node goes (as while the consumer restarts), then it is seen
		// consuming Billing: once Billing is in, Orders must still be.
		zktest.Delete(t, consumerProc, orders.Path)
		zktest.Create(t, consumerProc, scopeConsumerPath(scopeIfaces[2], scopeConsumer, "127.0.49.1"), nil, true)
		wantScope("Billing added, Orders kept", 0, 1, 2)
	})

	if bad := istiodRejections(cp.Istiod.Log()); len(bad) > 0 {
		t.Errorf("Istiod dropped or a client refused a resource:\n%s", strings.Join(bad, "\n"))
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
