package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// suite is shared by every test of this binary: one etcd + kube-apiserver with Istio's CRDs
// (started by the first test that asks), and the binaries built from this repository. Each test
// runs its own Istiod and deletes the objects it applies.
var suite *servers.Suite

func TestMain(m *testing.M) {
	suite = servers.NewSuite()
	code := m.Run()
	suite.Close()
	os.Exit(code)
}

// TestHarness proves the harness itself against a real Istiod fed by the Kubernetes CRD store
// alone (configSources [k8s://]): a ServiceEntry with two endpoints, subsets and a 90/10
// VirtualService must show up in the sidecar view and split real proxyless gRPC traffic.
func TestHarness(t *testing.T) {
	start := time.Now()
	cluster := suite.Cluster(t)
	clusterReady := time.Now()
	cp := suite.ControlPlane(t, servers.IstiodOptions{})
	istiodReady := time.Now()
	t.Logf("measure: shared cluster (etcd+apiserver+CRDs; ~0 if an earlier test started it) %v, istiod to /ready %v",
		clusterReady.Sub(start).Round(time.Millisecond), istiodReady.Sub(clusterReady).Round(time.Millisecond))
	if rss, err := cp.Istiod.RSS(); err == nil {
		t.Logf("measure: istiod RSS at ready %d MiB", rss>>20)
	}

	backends := traffic.StartBackends(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	v1, v2, extra := backends[0], backends[1], backends[2]
	const host, port = "echo.harness.e2e", 7070
	clusterName := fmt.Sprintf("outbound|%d||%s", port, host)

	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	cluster.API.Apply(t, serviceEntry(host, port, v1.Port, v1.IP, v2.IP)+"---\n"+rules(host, port, 90, 10))

	view.WaitClusterEndpoints(t, clusterName, []string{v1.Addr, v2.Addr}, 20*time.Second)
	view.WaitClusterEndpoints(t, fmt.Sprintf("outbound|%d|v1|%s", port, host), []string{v1.Addr}, 5*time.Second)
	view.WaitClusterEndpoints(t, fmt.Sprintf("outbound|%d|v2|%s", port, host), []string{v2.Addr}, 5*time.Second)
	// LDS names route configuration "7070" and the view follows it over RDS.
	wantWeights := map[string]uint32{
		fmt.Sprintf("outbound|%d|v1|%s", port, host): 90,
		fmt.Sprintf("outbound|%d|v2|%s", port, host): 10,
	}
	view.WaitFor(t, "the 90/10 route", 5*time.Second, func(s *xdsview.Snapshot) error {
		vh := s.VirtualHost(strconv.Itoa(port), host)
		if vh == nil || len(vh.GetRoutes()) == 0 {
			return fmt.Errorf("no virtual host for %s in route %d (routes: %d)", host, port, len(s.Routes))
		}
		if got := xdsview.ClusterWeights(vh.GetRoutes()[0]); !maps.Equal(got, wantWeights) {
			return fmt.Errorf("route sends %v", got)
		}
		return nil
	})

	t.Run("debug pages and metrics", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		syncz, err := cp.Istiod.Debug(ctx, "/debug/syncz")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(syncz), "client.default") {
			t.Errorf("/debug/syncz does not list the sidecar view's connection:\n%.2000s", syncz)
		}
		metrics, err := cp.Istiod.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, "pilot_xds_pushes") {
			t.Errorf("Istiod metrics lack pilot_xds_pushes:\n%.2000s", metrics)
		}
		out, err := cluster.API.Kubectl(ctx, "get", "serviceentries", "-n", "default", "-o", "name")
		if err != nil || !strings.Contains(out, "harness-echo") {
			t.Errorf("kubectl does not list the ServiceEntry (%v):\n%s", err, out)
		}
	})

	t.Run("traffic splits 90/10", func(t *testing.T) {
		client := traffic.StartClient(t, traffic.ClientOptions{
			Binary:  suite.Build(t, traffic.ClientPackage),
			XDSAddr: cp.Istiod.GRPCAddr,
		})
		checkSplit9010(t, client, host, port, v1, v2)
	})

	t.Run("CR change reaches the sidecar view", func(t *testing.T) {
		// Alternate between two and three endpoints; each round's latency is from the API write
		// to the EDS response that first carries the new endpoint set.
		var lat []time.Duration
		for i := range 4 {
			ips, want := []string{v1.IP, v2.IP, extra.IP}, []string{v1.Addr, v2.Addr, extra.Addr}
			if i%2 == 1 {
				ips, want = ips[:2], want[:2]
			}
			before := time.Now()
			// ApplyObjects, not Apply: the ServiceEntry is already deleted when the whole test ends.
			if err := cluster.API.ApplyObjects(context.Background(), serviceEntry(host, port, v1.Port, ips...)); err != nil {
				t.Fatal(err)
			}
			seen := view.WaitClusterEndpoints(t, clusterName, want, 10*time.Second)
			lat = append(lat, seen.Sub(before))
		}
		slices.Sort(lat)
		t.Logf("measure: CR change -> sidecar EDS: min %v median %v max %v (Istiod debounce 100 ms)",
			lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	})

	t.Run("view follows an Istiod restart", func(t *testing.T) {
		before := time.Now()
		cp.Istiod.Restart(t)
		t.Logf("measure: istiod restart to /ready %v", time.Since(before).Round(time.Millisecond))
		view.WaitFor(t, "a fresh push after the restart", 20*time.Second, func(s *xdsview.Snapshot) error {
			if !s.Updated.After(before) {
				return fmt.Errorf("no response since the restart (last at %v)", s.Updated)
			}
			return xdsview.EndpointsEqual(s, clusterName, []string{v1.Addr, v2.Addr})
		})
	})

	if rss, err := cp.Istiod.RSS(); err == nil {
		t.Logf("measure: istiod RSS at idle with this config %d MiB", rss>>20)
	}
}

// TestHarnessIstiodExitsWithoutSource pins two facts later tests rely on: Istiod exits at start-up
// when an xds:// config source does not answer (so the bridge must start first), and the harness
// reports that at once, with Istiod's own error, rather than waiting out the ready timeout.
func TestHarnessIstiodExitsWithoutSource(t *testing.T) {
	cluster := suite.Cluster(t)
	down := fmt.Sprintf("xds://127.0.0.1:%d", servers.FreePort(t)) // nothing listens there
	start := time.Now()
	_, err := servers.TryStartIstiod(t, servers.IstiodOptions{
		API:           cluster.API,
		ConfigSources: []servers.ConfigSource{{Address: down}, {Address: servers.K8sAddress}},
		ReadyTimeout:  30 * time.Second,
	})
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Istiod became ready with config source %s down", down)
	}
	if !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("want an exit with Istiod's dial error, got: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("reporting the exit took %v; it should not wait for the ready timeout", took)
	}
}

// serviceEntry is a STATIC ServiceEntry whose endpoints (labelled version v1, v2, v3... in
// order) listen on targetPort.
func serviceEntry(host string, port, targetPort int, ips ...string) string {
	s := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: harness-echo, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %d, name: grpc, protocol: GRPC, targetPort: %d}]
  endpoints:
`, host, port, targetPort)
	for i, ip := range ips {
		s += fmt.Sprintf("  - {address: %s, labels: {version: v%d}}\n", ip, i+1)
	}
	return s
}

// rules is a DestinationRule with subsets v1 and v2 and a VirtualService splitting w1/w2 over them.
func rules(host string, port, w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: harness-echo, namespace: default}
spec:
  host: %[1]s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: harness-echo, namespace: default}
spec:
  hosts: [%[1]s]
  http:
  - route:
    - {destination: {host: %[1]s, subset: v1, port: {number: %[2]d}}, weight: %[3]d}
    - {destination: {host: %[1]s, subset: v2, port: {number: %[2]d}}, weight: %[4]d}
`, host, port, w1, w2)
}
