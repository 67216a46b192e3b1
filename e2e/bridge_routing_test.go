package e2e

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// echoServices is a services file with one gRPC service whose two instances are backends v1 and
// v2 (labelled version v1 and v2), listening on one port.
func echoServices(name string, v1, v2 *traffic.Backend) string {
	return fmt.Sprintf(`services:
  - name: %s
    ports: [{name: grpc, protocol: grpc}]
    instances:
      - {address: %s, ports: {grpc: %d}, labels: {version: v1}}
      - {address: %s, ports: {grpc: %d}, labels: {version: v2}}
`, name, v1.IP, v1.Port, v2.IP, v2.Port)
}

// subsetsRule is a DestinationRule giving host the subsets v1 and v2 by label version.
func subsetsRule(namespace, name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: %s}
spec:
  host: %s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, name, namespace, host)
}

// TestBridgeTrafficSplit is issue 3 test 6: a DestinationRule with subsets and a 90/10
// VirtualService, served by the bridge from a static resource file beside the ServiceEntry it
// makes from the file registry, split real proxyless gRPC traffic 90/10.
func TestBridgeTrafficSplit(t *testing.T) {
	t.Parallel()
	backends := traffic.StartBackends(t, "127.0.41.1", "127.0.41.2")
	v1, v2 := backends[0], backends[1]
	// The host is "<name>.file" (file registry) and the service port is the one its instances use.
	host, port := "echo-split.file", v1.Port
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", echoServices("echo-split", v1, v2))
	rules := writeFile(t, dir, "rules.yaml", subsetsRule("split", "echo-split", host)+fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-split, namespace: split}
spec:
  hosts: [%[1]s]
  http:
  - route:
    - {destination: {host: %[1]s, subset: v1, port: {number: %[2]d}}, weight: 90}
    - {destination: {host: %[1]s, subset: v2, port: {number: %[2]d}}, weight: 10}
`, host, port))
	b := startBridge(t, fileRegistryConfig("split", services, fmt.Sprintf("staticResources: [%q]\n", rules)))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})

	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	wantEndpoints(t, view, "the subsets", map[string][]xdsview.Endpoint{
		outboundCluster(host, port, "v1"): {{Address: v1.Addr}},
		outboundCluster(host, port, "v2"): {{Address: v2.Addr}},
	}, 20*time.Second)
	waitRoute(t, view, port, host, 0, map[string]uint32{outboundCluster(host, port, "v1"): 90, outboundCluster(host, port, "v2"): 10})

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	checkSplit9010(t, client, host, port, v1, v2)
}

// TestBridgeKubernetesAndMCP is issue 3 test 5: with configSources [xds://bridge, k8s://], a
// VirtualService created as a custom resource in the kube-apiserver routes to a ServiceEntry that
// came from the bridge (and to subsets of a DestinationRule the bridge serves too): requests with
// the header x-lane: canary reach v2, the others v1, over real proxyless gRPC.
func TestBridgeKubernetesAndMCP(t *testing.T) {
	t.Parallel()
	backends := traffic.StartBackends(t, "127.0.42.1", "127.0.42.2")
	v1, v2 := backends[0], backends[1]
	host, port := "echo-k8s.file", v1.Port
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", echoServices("echo-k8s", v1, v2))
	rules := writeFile(t, dir, "rules.yaml", subsetsRule("k8s-mcp", "echo-k8s", host))
	b := startBridge(t, fileRegistryConfig("k8s-mcp", services, fmt.Sprintf("staticResources: [%q]\n", rules)))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	wantEndpoints(t, view, "the bridge's service and subsets", map[string][]xdsview.Endpoint{
		outboundCluster(host, port, ""):   {{Address: v1.Addr}, {Address: v2.Addr}},
		outboundCluster(host, port, "v1"): {{Address: v1.Addr}},
		outboundCluster(host, port, "v2"): {{Address: v2.Addr}},
	}, 20*time.Second)

	cp.API.Apply(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-k8s-lanes, namespace: default}
spec:
  hosts: [%[1]s]
  http:
  - match: [{headers: {x-lane: {exact: canary}}}]
    route: [{destination: {host: %[1]s, subset: v2, port: {number: %[2]d}}}]
  - route: [{destination: {host: %[1]s, subset: v1, port: {number: %[2]d}}}]
`, host, port))
	// The sidecar's route for the bridge's host is the custom resource's...
	waitRoute(t, view, port, host, 0, map[string]uint32{outboundCluster(host, port, "v2"): 1})
	waitRoute(t, view, port, host, 1, map[string]uint32{outboundCluster(host, port, "v1"): 1})
	// ...and Istiod's store holds it beside the bridge's resources.
	found := map[string]bool{}
	for _, o := range configz(t, cp.Istiod) {
		found[o.ID()] = true
	}
	for _, id := range []string{"VirtualService default/echo-k8s-lanes", "ServiceEntry k8s-mcp/echo-k8s.file", "DestinationRule k8s-mcp/echo-k8s"} {
		if !found[id] {
			t.Errorf("Istiod's config store has no %s", id)
		}
	}

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	target := traffic.Target(host, port)
	client.Count(t, target, 1) // waits for the client's xDS to be ready
	for _, lane := range []struct {
		header map[string]string
		want   *traffic.Backend
	}{{map[string]string{"x-lane": "canary"}, v2}, {nil, v1}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := client.Do(ctx, traffic.Call{Target: target, N: 100, Metadata: lane.header})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{lane.want.Addr: 100}; !maps.Equal(res.Counts, want) || res.Failed() > 0 {
			t.Errorf("headers %v: answered by %v, errors %v; want all 100 by %s", lane.header, res.Counts, res.Errors, lane.want.Addr)
		}
	}
}

// waitRoute waits until route configuration "<port>" sends the i-th route of host's virtual host
// to want (cluster -> weight).
func waitRoute(t *testing.T, v *xdsview.View, port int, host string, i int, want map[string]uint32) {
	t.Helper()
	v.WaitFor(t, fmt.Sprintf("route %d of %s to %v", i, host, want), 20*time.Second, func(s *xdsview.Snapshot) error {
		vh := s.VirtualHost(strconv.Itoa(port), host)
		if vh == nil || len(vh.GetRoutes()) <= i {
			return fmt.Errorf("route %d of %s: virtual host %v", port, host, vh)
		}
		if got := xdsview.ClusterWeights(vh.GetRoutes()[i]); !maps.Equal(got, want) {
			return fmt.Errorf("route %d of %s goes to %v", i, host, got)
		}
		return nil
	})
}

// checkSplit9010 sends 1,000 RPCs through the client and checks that v1 and v2, and no other
// backend, answered them about 90/10.
func checkSplit9010(t *testing.T, client *traffic.Client, host string, port int, v1, v2 *traffic.Backend) {
	t.Helper()
	const n = 1000
	res := client.Count(t, traffic.Target(host, port), n)
	t.Logf("counts %v in %v", res.Counts, res.Elapsed.Round(time.Millisecond))
	if res.Failed() > 0 {
		t.Errorf("%d of %d RPCs failed: %v", res.Failed(), n, res.Errors)
	}
	if got := res.Counts[v1.Addr] + res.Counts[v2.Addr]; got != n-res.Failed() {
		t.Errorf("answers from unexpected backends: %v", res.Counts)
	}
	// grpc-go picks a weighted cluster independently per RPC, so the v2 count is
	// Binomial(1000, 0.1): mean 100, standard deviation 9.5. [50, 150] is more than 5 standard
	// deviations each side (a false failure about once in 10 million runs), and still fails a
	// split that was ignored (0 or 1000) or read as 50/50 (500).
	if c := res.Counts[v2.Addr]; c < 50 || c > 150 {
		t.Errorf("v2 answered %d of %d RPCs, want 100 ± 50 (90/10 split)", c, n)
	}
}
