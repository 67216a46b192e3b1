package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// What the Nacos scenario registers, and what Istio must make of it. The expectations follow
// docs/registries.md and the nacos package's documented mapping, never what the bridge
// reports about itself:
//   - a Spring Cloud service is "<service>.<group>.<namespace>.nacos", lower-cased, '_' -> '-'
//     (DEFAULT_GROUP/public: "<service>.default-group.public.nacos");
//   - its port is http, or https for instances registered with metadata secure=true, numbered as
//     the instances listen (all of them use one port here);
//   - the Nacos weight is multiplied by 100 (1.0 -> 100), and Istio reports an endpoint's weight as
//     the EDS load_balancing_weight unchanged.
//
// The server is PolarisMesh speaking the Nacos protocols (docs/real-servers.md). Everything is
// registered in DEFAULT_GROUP of the public namespace, because Polaris pushes no changes of other
// groups, and no service drops to zero instances, because Polaris may keep serving a service's
// last instance after it left: both are Polaris quirks, not Nacos behaviour, and not tested here.
const (
	nacosRegistryName = "nacos-e2e" // also the Istio namespace of its resources
	nacosOrders       = "orders"
	nacosPayments     = "payments"
	nacosOrdersHost   = "orders.default-group.public.nacos"
	nacosPaymentsHost = "payments.default-group.public.nacos"
	nacosHTTPPort     = 8080
	nacosHTTPSPort    = 8443
	// nacosRecoveryDelay is the bridge's recoveryDelay (nacosBridgeConfig).
	nacosRecoveryDelay = 2 * time.Second
)

// nacosHosts are the hosts this test owns in the sidecar view: every outbound cluster of them must
// be one the test expects.
var nacosHosts = []string{nacosOrdersHost, nacosPaymentsHost}

// TestNacosThroughIstiod is issue 5's "through the real Istiod harness" item: Spring Cloud
// services registered in a real Nacos-protocol server (by the unmodified nacos-sdk-go client, as
// Spring Cloud Alibaba registers) become an HTTP and an HTTPS cluster with weighted endpoints in a
// real Istiod fed by the bridge; deregistration propagates; while the server is down nothing
// changes in Istiod and the bridge reports the registry failed and protected; after the server
// comes back the state converges and new registrations flow again.
func TestNacosThroughIstiod(t *testing.T) {
	t.Parallel()
	p, b, cp, view := nacosStart(t)
	addr := p.NacosAddr()

	// Each instance is its own application process with its own naming client (its own gRPC
	// connection, hence its own ephemeral registrations). orders3 registers only after the first
	// server restart; its client lives as long as the whole test (closing a client ends its
	// ephemeral registrations), so it is made here rather than in a subtest.
	orders1, orders2, orders3, payments := nacosApp(t, addr), nacosApp(t, addr), nacosApp(t, addr), nacosApp(t, addr)
	registeredAt := time.Now()
	nacosRegister(t, orders1, nacosSpringInstance(nacosOrders, "127.0.0.21", nacosHTTPPort, 1, false))
	nacosRegister(t, orders2, nacosSpringInstance(nacosOrders, "127.0.0.22", nacosHTTPPort, 2, false))
	nacosRegister(t, payments, nacosSpringInstance(nacosPayments, "127.0.0.23", nacosHTTPSPort, 1, true))
	registered := map[string][]xdsview.Endpoint{
		outboundCluster(nacosOrdersHost, nacosHTTPPort, ""): {
			{Address: "127.0.0.21:8080", Weight: 100},
			{Address: "127.0.0.22:8080", Weight: 200},
		},
		outboundCluster(nacosPaymentsHost, nacosHTTPSPort, ""): {{Address: "127.0.0.23:8443", Weight: 100}},
	}
	seen := waitOwnedClusters(t, view, nacosHosts, "the registrations", registered, 30*time.Second)
	t.Logf("measure: Nacos registration of two new services -> sidecar CDS+EDS %v (Polaris lists new services ~1 s late; the bridge polls every 300 ms)",
		seen.Sub(registeredAt).Round(time.Millisecond))
	// Listeners and routes arrive in their own responses, after clusters and endpoints.
	view.WaitFor(t, "HTTP routing for orders and TLS passthrough for payments", 10*time.Second, nacosProtocolHandling)
	nacosIstioPorts(t, cp.Istiod, map[string][]string{
		nacosOrdersHost:   {"http/8080/HTTP"},
		nacosPaymentsHost: {"https/8443/HTTPS"},
	})

	t.Run("deregistration", func(t *testing.T) {
		at := time.Now()
		if ok, err := orders2.DeregisterInstance(vo.DeregisterInstanceParam{
			ServiceName: nacosOrders, GroupName: "DEFAULT_GROUP", Cluster: "DEFAULT", Ip: "127.0.0.22", Port: nacosHTTPPort, Ephemeral: true,
		}); err != nil || !ok {
			t.Fatalf("deregistering 127.0.0.22: ok=%v err=%v", ok, err)
		}
		want := maps.Clone(registered)
		want[outboundCluster(nacosOrdersHost, nacosHTTPPort, "")] = []xdsview.Endpoint{{Address: "127.0.0.21:8080", Weight: 100}}
		seen := waitOwnedClusters(t, view, nacosHosts, "orders down to one endpoint", want, 15*time.Second)
		t.Logf("measure: Nacos deregistration -> sidecar EDS %v", seen.Sub(at).Round(time.Millisecond))
		registered = want
	})
	if t.Failed() {
		return
	}

	t.Run("server outage and restart", func(t *testing.T) {
		killedAt := time.Now()
		p.Kill()
		var st registryStatus
		servers.WaitFor(t, 15*time.Second, "the bridge to hold the failed registry", func() error {
			var err error
			if st, err = bridgeRegistry(b, nacosRegistryName); err != nil {
				return err
			}
			if st.Connected || !st.Protected || st.Protection == nil || st.Protection.Reason != "failure" || !st.Adapter.Reported || st.Adapter.Reachable {
				return fmt.Errorf("registry status %+v, want not connected, protected for failure, server unreachable", st)
			}
			return nil
		})
		detectedAt := time.Now()
		t.Logf("measure: Polaris killed -> bridge reports the registry failed and protected %v (%s)",
			detectedAt.Sub(killedAt).Round(time.Millisecond), st.LastError)
		if st.Services != 2 || st.Instances != 2 {
			t.Errorf("bridge serves %d services with %d instances while Nacos is down, want the 2 and 2 it had", st.Services, st.Instances)
		}
		// Nothing may change in Istiod while the server is down: the endpoints are there at the end
		// of the hold, and no EDS response since the kill changed them (the view marks a change
		// when endpoints change or their cluster goes, so this also catches a flap).
		const hold = 4 * time.Second
		time.Sleep(hold)
		s := view.Snapshot()
		if err := ownedClustersMatch(s, nacosHosts, registered); err != nil {
			t.Fatalf("%v after Nacos was killed: %v", time.Since(killedAt).Round(time.Millisecond), err)
		}
		for _, c := range slices.Sorted(maps.Keys(registered)) {
			if at := s.Changed[xdsview.EDS][c]; at.After(killedAt) {
				t.Errorf("endpoints of %s changed %v after Nacos was killed", c, at.Sub(killedAt).Round(time.Millisecond))
			}
		}
		t.Logf("Istiod kept every endpoint for %v after the bridge detected the outage", time.Since(detectedAt).Round(time.Millisecond))

		restartAt := time.Now()
		p.Restart()
		upAt := time.Now()
		// What the restarted server holds before the applications reconnect is Polaris' business
		// (its boltdb store), not Nacos behaviour: logged, not asserted.
		t.Logf("Polaris restarted in %v; orders instances it lists at once: %s",
			upAt.Sub(restartAt).Round(time.Millisecond), nacosServerInstances(p.NacosAddr(), nacosOrders))
		servers.WaitFor(t, 30*time.Second, "the registry to recover", func() error {
			st, err := bridgeRegistry(b, nacosRegistryName)
			if err != nil {
				return err
			}
			if !st.Connected || st.Protected || !st.Adapter.Reachable || st.Adapter.Recovering {
				return fmt.Errorf("registry status %+v, want connected, not protected, server reachable", st)
			}
			if st.ReportedServices != 2 || st.ReportedInstances != 2 {
				return fmt.Errorf("registry reports %d services / %d instances, want 2 / 2", st.ReportedServices, st.ReportedInstances)
			}
			return nil
		})
		recoveredAt := time.Now()
		t.Logf("measure: Polaris up -> bridge recovered (recoveryDelay %v) %v; orders instances Polaris lists now: %s",
			nacosRecoveryDelay, recoveredAt.Sub(upAt).Round(time.Millisecond), nacosServerInstances(p.NacosAddr(), nacosOrders))
		s = view.Snapshot()
		if err := ownedClustersMatch(s, nacosHosts, registered); err != nil {
			t.Errorf("after recovery: %v", err)
		}
		for _, c := range slices.Sorted(maps.Keys(registered)) {
			if at := s.Changed[xdsview.EDS][c]; at.After(killedAt) {
				t.Errorf("endpoints of %s changed %v after Nacos was killed, though the server came back with the same instances", c, at.Sub(killedAt).Round(time.Millisecond))
			}
		}

		// A change after the restart reaches the sidecar: a new orders instance registers.
		at := time.Now()
		nacosRegister(t, orders3, nacosSpringInstance(nacosOrders, "127.0.0.24", nacosHTTPPort, 1, false))
		want := maps.Clone(registered)
		want[outboundCluster(nacosOrdersHost, nacosHTTPPort, "")] = []xdsview.Endpoint{
			{Address: "127.0.0.21:8080", Weight: 100},
			{Address: "127.0.0.24:8080", Weight: 100},
		}
		seen := waitOwnedClusters(t, view, nacosHosts, "the registration after the restart", want, 15*time.Second)
		t.Logf("measure: Nacos registration into an existing service after the restart -> sidecar EDS %v", seen.Sub(at).Round(time.Millisecond))
		registered = want
	})
	if t.Failed() {
		return
	}

	// Polaris keeps its instances in boltdb, so the restart above came back with them. A real
	// Nacos keeps ephemeral instances (every Spring Cloud registration) in memory only: a
	// restarted server knows nothing until each client's SDK reconnects and replays its
	// registrations. Polaris restarted without its store behaves like that.
	t.Run("server restarts empty", func(t *testing.T) {
		killedAt := time.Now()
		p.Kill()
		servers.WaitFor(t, 15*time.Second, "the bridge to hold the failed registry", func() error {
			st, err := bridgeRegistry(b, nacosRegistryName)
			if err == nil && (st.Connected || !st.Protected) {
				err = fmt.Errorf("registry status %+v, want not connected, protected", st)
			}
			return err
		})
		store := filepath.Join(p.Dir, "polaris.bolt") // StartPolaris' store.option.path, relative to Dir
		if err := os.Remove(store); err != nil {
			t.Fatalf("removing Polaris' store: %v", err)
		}
		p.Restart()
		upAt := time.Now()
		t.Logf("orders instances the empty server lists at once: %s", nacosServerInstances(p.NacosAddr(), nacosOrders))
		// Until the registry is connected and unprotected again with everything reported, record
		// every protection the bridge applies on the way.
		reasons := map[string]bool{}
		servers.WaitFor(t, 30*time.Second, "the registry to recover with every instance re-registered", func() error {
			st, err := bridgeRegistry(b, nacosRegistryName)
			if err != nil {
				return err
			}
			if st.Protection != nil {
				reasons[st.Protection.Reason] = true
			}
			if !st.Connected || st.Protected || !st.Adapter.Reachable || st.Adapter.Recovering {
				return fmt.Errorf("registry status %+v, want connected, not protected, server reachable", st)
			}
			if st.ReportedServices != 2 || st.ReportedInstances != 3 {
				return fmt.Errorf("registry reports %d services / %d instances, want 2 / 3", st.ReportedServices, st.ReportedInstances)
			}
			return nil
		})
		t.Logf("measure: empty Polaris up -> every instance re-registered and the registry recovered %v; protections seen on the way: %v; orders instances Polaris lists now: %s",
			time.Since(upAt).Round(time.Millisecond), slices.Sorted(maps.Keys(reasons)), nacosServerInstances(p.NacosAddr(), nacosOrders))
		// The applications re-registered the same instances: Istiod must have seen no change at
		// all, neither while the server was empty nor while the instances came back one by one.
		time.Sleep(500 * time.Millisecond) // a push the recovery triggered reaches the view in ~0.3 s
		s := view.Snapshot()
		if err := ownedClustersMatch(s, nacosHosts, registered); err != nil {
			t.Errorf("after the empty restart: %v", err)
		}
		for _, c := range slices.Sorted(maps.Keys(registered)) {
			if at := s.Changed[xdsview.EDS][c]; at.After(killedAt) {
				t.Errorf("endpoints of %s changed %v after Nacos was killed, though every instance came back", c, at.Sub(killedAt).Round(time.Millisecond))
			}
		}
	})
}

// nacosStart starts Polaris, the bridge reading it and an Istiod fed by the bridge (and k8s://,
// as the shipped mesh config lists both), and connects a sidecar view.
func nacosStart(t *testing.T) (*servers.Polaris, *servers.Bridge, *servers.ControlPlane, *xdsview.View) {
	t.Helper()
	bin := suite.Build(t, "./cmd/mcp-bridge")
	suite.Cluster(t)
	start := time.Now()
	p := servers.StartPolaris(t)
	polarisAt := time.Now()
	// The bridge first: Istiod exits when an xds:// source does not answer at its start.
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: nacosBridgeConfig(p.NacosAddr(), t.TempDir())})
	bridgeAt := time.Now()
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
	istiodAt := time.Now()
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	t.Logf("measure: start-up: polaris serving %v, bridge ready %v, istiod ready %v",
		polarisAt.Sub(start).Round(time.Millisecond), bridgeAt.Sub(polarisAt).Round(time.Millisecond), istiodAt.Sub(bridgeAt).Round(time.Millisecond))
	return p, b, cp, view
}

// nacosBridgeConfig is the bridge configuration: one Nacos registry on the Polaris server, with a
// short list poll (new services are found by polling), resync and recovery delay, so the test
// does not wait on production defaults, and the SDK's cache files in the test's directory. The
// recovery delay must still cover the applications' SDKs reconnecting and replaying their
// registrations (about 0.1-1 s here after a few seconds down: the SDK's reconnect back-off grows
// by 100 ms per failed attempt), or the recovery read of an empty server would withdraw them.
func nacosBridgeConfig(addr, cacheDir string) string {
	return fmt.Sprintf(`registries:
  - name: %s
    type: nacos
    nacos:
      servers: [%q]
      flavor: polaris
      pollInterval: 300ms
      resyncInterval: 5s
      recoveryDelay: %s
      timeout: 1s
      cacheDir: %q
`, nacosRegistryName, addr, nacosRecoveryDelay, filepath.Join(cacheDir, "nacos-sdk"))
}

// nacosApp is an application process's naming client, as Spring Cloud Alibaba creates one per
// process, in the public namespace. It is closed when the test ends.
func nacosApp(t *testing.T, addr string) naming_client.INamingClient {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId: "", // public
			TimeoutMs:   3000, NotLoadCacheAtStart: true,
			CacheDir: filepath.Join(dir, "cache"), LogDir: filepath.Join(dir, "log"), LogLevel: "warn",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: host, Port: n}},
	})
	if err != nil {
		t.Fatalf("creating an application's naming client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

// nacosSpringInstance is the registration Spring Cloud Alibaba's NacosServiceRegistry sends: an
// ephemeral, enabled, healthy instance in cluster DEFAULT of DEFAULT_GROUP, metadata
// preserved.register.source=SPRING_CLOUD, and secure=true when spring.cloud.nacos.discovery.secure
// is set (the service speaks HTTPS).
func nacosSpringInstance(service, ip string, port int, weight float64, secure bool) vo.RegisterInstanceParam {
	md := map[string]string{"preserved.register.source": "SPRING_CLOUD"}
	if secure {
		md["secure"] = "true"
	}
	return vo.RegisterInstanceParam{
		ServiceName: service, GroupName: "DEFAULT_GROUP", ClusterName: "DEFAULT",
		Ip: ip, Port: uint64(port), Weight: weight, Metadata: md,
		Enable: true, Healthy: true, Ephemeral: true,
	}
}

// nacosRegister registers an instance. A client's first request can race its own
// connection-time replay of a registration, and Polaris then refuses one of the two as "the same
// instance request": the call is tried again.
func nacosRegister(t *testing.T, c naming_client.INamingClient, p vo.RegisterInstanceParam) {
	t.Helper()
	var ok bool
	var err error
	for range 5 {
		if ok, err = c.RegisterInstance(p); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registering %s %s:%d: ok=%v err=%v", p.ServiceName, p.Ip, p.Port, ok, err)
}

// nacosServerInstances lists a DEFAULT_GROUP service's instances over the Nacos v1 HTTP API, for
// the log: "ip:port" of each, or why not.
func nacosServerInstances(addr, service string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	q := url.Values{"serviceName": {service}, "groupName": {"DEFAULT_GROUP"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var list struct {
		Hosts []struct {
			IP      string `json:"ip"`
			Port    int    `json:"port"`
			Healthy bool   `json:"healthy"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Sprintf("HTTP %d %.200s", resp.StatusCode, body)
	}
	out := []string{}
	for _, h := range list.Hosts {
		out = append(out, fmt.Sprintf("%s:%d(healthy=%v)", h.IP, h.Port, h.Healthy))
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

// nacosProtocolHandling checks that Istio treats orders as HTTP and payments as HTTPS:
//   - orders: the outbound listener of port 8080 runs an HTTP connection manager that takes its
//     routes over RDS as route configuration "8080" (Istio names a sidecar's outbound HTTP routes by
//     port), and that route configuration has a virtual host for the orders host routing to the
//     orders cluster;
//   - payments: HTTPS is TLS to Istio, which the sidecar passes through untouched: its cluster is
//     reached from a TCP proxy filter chain of a port-8443 listener, with no HTTP connection
//     manager, and no route configuration serves the payments host. (The listener is bound to the
//     service's VIP, so Istio matches no SNI: tls.go, buildSidecarOutboundTLSFilterChainOpts.)
//
// Listeners alike could come from a TCP port; nacosIstioPorts checks the protocols themselves.
func nacosProtocolHandling(s *xdsview.Snapshot) error {
	var errs []error
	ordersCluster := outboundCluster(nacosOrdersHost, nacosHTTPPort, "")
	route := strconv.Itoa(nacosHTTPPort)
	if !slices.ContainsFunc(slices.Collect(maps.Values(s.Listeners)), func(l *listenerv3.Listener) bool {
		return l.GetAddress().GetSocketAddress().GetPortValue() == nacosHTTPPort && slices.Contains(nacosRDSNames(l), route)
	}) {
		errs = append(errs, fmt.Errorf("no listener of port %d has an HTTP connection manager with RDS route %q", nacosHTTPPort, route))
	}
	if vh := s.VirtualHost(route, nacosOrdersHost); vh == nil || len(vh.GetRoutes()) == 0 {
		errs = append(errs, fmt.Errorf("route configuration %s has no virtual host for %s", route, nacosOrdersHost))
	} else if got := xdsview.ClusterWeights(vh.GetRoutes()[len(vh.GetRoutes())-1]); !maps.Equal(got, map[string]uint32{ordersCluster: 1}) {
		errs = append(errs, fmt.Errorf("virtual host %s routes to %v, want %s", vh.GetName(), got, ordersCluster))
	}

	paymentsCluster := outboundCluster(nacosPaymentsHost, nacosHTTPSPort, "")
	var chains []string
	for _, l := range s.Listeners {
		for _, fc := range l.GetFilterChains() {
			if !slices.Contains(nacosTCPProxyClusters(fc), paymentsCluster) {
				continue
			}
			desc := fmt.Sprintf("listener %s (%s:%d) filter chain %q", l.GetName(),
				l.GetAddress().GetSocketAddress().GetAddress(), l.GetAddress().GetSocketAddress().GetPortValue(), fc.GetName())
			switch {
			case l.GetAddress().GetSocketAddress().GetPortValue() != nacosHTTPSPort:
				errs = append(errs, fmt.Errorf("%s forwards to %s, want a listener of port %d", desc, paymentsCluster, nacosHTTPSPort))
			case len(nacosRDSNames(&listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{fc}})) > 0:
				errs = append(errs, fmt.Errorf("%s of %s runs an HTTP connection manager", desc, paymentsCluster))
			}
			chains = append(chains, desc)
		}
	}
	if len(chains) == 0 {
		errs = append(errs, fmt.Errorf("no listener forwards TCP (TLS passthrough) to %s", paymentsCluster))
	}
	for name := range s.Routes {
		if vh := s.VirtualHost(name, nacosPaymentsHost); vh != nil {
			errs = append(errs, fmt.Errorf("route configuration %s has a virtual host %s for the HTTPS service", name, vh.GetName()))
		}
	}
	return errors.Join(errs...)
}

// nacosIstioPorts checks the ports of the services Istiod holds in its service registry (its
// /debug/registryz: name/number/protocol as Istio parsed them from the ServiceEntries), per host.
func nacosIstioPorts(t *testing.T, i *servers.Istiod, want map[string][]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := i.Debug(ctx, "/debug/registryz")
	if err != nil {
		t.Fatal(err)
	}
	var services []struct {
		Hostname string `json:"hostname"`
		Ports    []struct {
			Name     string `json:"name"`
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
		} `json:"ports"`
	}
	if err := json.Unmarshal(body, &services); err != nil {
		t.Fatalf("decoding /debug/registryz: %v", err)
	}
	got := map[string][]string{}
	for _, s := range services {
		if _, ok := want[s.Hostname]; !ok {
			continue
		}
		for _, p := range s.Ports {
			got[s.Hostname] = append(got[s.Hostname], fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
		}
	}
	for _, h := range slices.Sorted(maps.Keys(want)) {
		if !slices.Equal(got[h], want[h]) {
			t.Errorf("Istiod's registry has ports %v for %s, want %v", got[h], h, want[h])
		}
	}
}

// nacosRDSNames returns the RDS route configuration names of a listener's HTTP connection managers.
func nacosRDSNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(&hcm) == nil {
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// nacosTCPProxyClusters returns the clusters a filter chain's TCP proxies forward to.
func nacosTCPProxyClusters(fc *listenerv3.FilterChain) []string {
	var out []string
	for _, f := range fc.GetFilters() {
		var tp tcpproxyv3.TcpProxy
		if tc := f.GetTypedConfig(); tc != nil && tc.UnmarshalTo(&tp) == nil && tp.GetCluster() != "" {
			out = append(out, tp.GetCluster())
		}
	}
	return out
}
