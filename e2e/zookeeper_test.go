package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// What the ZooKeeper scenario registers, and what Istio must make of it. The expectations follow
// docs/registries.md#hosts and translate's documented defaults for a registry of type zookeeper, never
// what the bridge reports about itself:
//   - a Dubbo 2 interface is its name lower-cased (no group, no version here);
//   - a Dubbo 3 application is "<app>.zookeeper";
//   - an interface the Dubbo 3 mapping names for an application is an alias of it, and because the
//     application has a TCP (dubbo) port the alias gets a ServiceEntry of its own with all of the
//     application's ports (translate/doc.go: Istio rejects several hosts next to a TCP port);
//   - service ports are dubbo 20880 and tri 50051 (translate.DefaultServicePorts);
//   - Dubbo's default provider weight is 100; a configurator's weight overrides it, and Istio
//     reports a WorkloadEntry/endpoint weight as the EDS load_balancing_weight unchanged
//     (IstioEndpoint.GetLoadBalancingWeight: the weight, or 1 when unset).
const (
	zkRegistryName   = "zk" // also the namespace of its resources
	zkGreeterIface   = "com.example.Greeter"
	zkCartIface      = "com.example.Cart"
	zkShopApp        = "shop"
	zkGreeterHost    = "com.example.greeter"
	zkShopHost       = "shop.zookeeper"
	zkCartHost       = "com.example.cart"
	zkDubboPort      = 20880
	zkTriPort        = 50051
	zkDefaultWeight  = 100
	zkOverrideWeight = 250
)

// zkHosts are the hosts this test owns in the sidecar view: every outbound cluster of them must be
// one the test expects.
var zkHosts = []string{zkGreeterHost, zkShopHost, zkCartHost}

// TestZooKeeperThroughIstiod is issue 4's "through the real Istiod harness" item: Dubbo 2 and Dubbo
// 3 registrations in a real ZooKeeper become outbound clusters with the right endpoints in a real
// Istiod fed by the bridge; deregistration propagates; a ZooKeeper outage changes nothing in
// Istiod; after ZooKeeper comes back the state converges again. Both endpoint modes.
func TestZooKeeperThroughIstiod(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"inline", "workloadEntry"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			zkScenario(t, mode)
		})
	}
}

func zkScenario(t *testing.T, mode string) {
	z, admin, b, cp, view := zkStart(t, mode)

	// Each Dubbo process has its own session, so its ephemeral nodes live and die with it; Dubbo
	// Admin (configurators) and Dubbo 3's mapping writer use persistent nodes.
	greeterProc := zktest.Session(t, z.Addr())
	shopProc := zktest.Session(t, z.Addr())

	registeredAt := time.Now()
	greeterNode := zktest.ProviderPath("/dubbo", zkGreeterIface, zkDubbo2URL(zkGreeterIface, "127.0.0.2"))
	zktest.Create(t, greeterProc, greeterNode, []byte("127.0.0.2"), true)
	zktest.Create(t, admin, "/dubbo/"+zkGreeterIface+"/configurators/"+zktest.JavaURLEncode(fmt.Sprintf(
		"override://127.0.0.2:%d/%s?category=configurators&dynamic=false&enabled=true&weight=%d", zkDubboPort, zkGreeterIface, zkOverrideWeight)), nil, false)
	shopNode := "/services/" + zkShopApp + "/127.0.0.3:20880"
	zktest.Create(t, shopProc, shopNode, zkCuratorInstance(t, zkShopApp, "127.0.0.3"), true)
	zktest.Create(t, admin, "/dubbo/mapping/"+zkCartIface, []byte(zkShopApp), false)

	registered := zkWantAll()
	seen := waitOwnedClusters(t, view, zkHosts, "the registrations", registered, 20*time.Second)
	t.Logf("measure: ZooKeeper registration -> sidecar CDS+EDS %v", seen.Sub(registeredAt).Round(time.Millisecond))
	zkCheckWorkloadEntries(t, cp.Istiod, mode == "workloadEntry", "127.0.0.2", "127.0.0.3")

	t.Run("deregistration", func(t *testing.T) {
		greeter := outboundCluster(zkGreeterHost, zkDubboPort, "")
		// Dubbo Admin disables the provider: the service keeps its instance and port, so the
		// bridge serves a ServiceEntry with port 20880 and zero endpoints. Istio keeps such a
		// ServiceEntry's cluster and answers its EDS with an empty assignment (clients get "no
		// healthy upstream", not "unknown cluster").
		disable := "/dubbo/" + zkGreeterIface + "/configurators/" + zktest.JavaURLEncode(fmt.Sprintf(
			"override://127.0.0.2:%d/%s?category=configurators&dynamic=false&disabled=true", zkDubboPort, zkGreeterIface))
		at := time.Now()
		zktest.Create(t, admin, disable, nil, false)
		want := zkWantAll()
		want[greeter] = []xdsview.Endpoint{}
		seen := waitOwnedClusters(t, view, zkHosts, "the disabled provider's endpoint to go, its cluster kept", want, 10*time.Second)
		t.Logf("measure: disabling configurator -> empty EDS %v", seen.Sub(at).Round(time.Millisecond))
		zktest.Delete(t, admin, disable)
		waitOwnedClusters(t, view, zkHosts, "the provider enabled again, still weighing 250", registered, 10*time.Second)

		// The interface's only provider leaves: the bridge deregisters the Dubbo 2 service (an
		// interface without providers is no service to Dubbo either), its ServiceEntry is
		// withdrawn, and Istio removes the cluster with it.
		at = time.Now()
		zktest.Delete(t, greeterProc, greeterNode)
		want = zkWantAll()
		delete(want, greeter)
		seen = waitOwnedClusters(t, view, zkHosts, "the Greeter cluster to go", want, 10*time.Second)
		t.Logf("measure: provider znode deleted -> cluster gone %v", seen.Sub(at).Round(time.Millisecond))

		// The application's only instance leaves while /services/shop stays (Curator's container
		// node goes by itself later): its endpoints must leave Istio, for the application host and
		// for its alias. Whether the clusters stay (empty) or go depends on the ServiceEntry the
		// bridge keeps for an empty application; see TestZooKeeperEmptyApplication for why they
		// currently go.
		at = time.Now()
		zktest.Delete(t, shopProc, shopNode)
		shopClusters := []string{outboundCluster(zkShopHost, zkDubboPort, ""), outboundCluster(zkShopHost, zkTriPort, ""), outboundCluster(zkCartHost, zkDubboPort, ""), outboundCluster(zkCartHost, zkTriPort, "")}
		var kept []string
		view.WaitFor(t, "the shop instance's endpoints to go", 10*time.Second, func(s *xdsview.Snapshot) error {
			kept = kept[:0]
			var errs []error
			for _, c := range xdsview.ClusterNames(s, "outbound|") {
				switch {
				case !ownedBy(zkHosts, c):
				case !slices.Contains(shopClusters, c):
					errs = append(errs, fmt.Errorf("unexpected cluster %s", c))
				case len(s.Endpoints[c]) > 0:
					errs = append(errs, fmt.Errorf("%s: endpoints %s", c, describeEndpoints(s.Endpoints[c])))
				default:
					if _, ok := s.Endpoints[c]; !ok {
						errs = append(errs, fmt.Errorf("%s: no EDS answer yet", c))
					}
					kept = append(kept, c)
				}
			}
			return errors.Join(errs...)
		})
		t.Logf("measure: instance znode deleted -> endpoints gone %v; clusters kept (empty): %v", time.Since(at).Round(time.Millisecond), kept)

		// Both processes register again (a restart: new timestamp, hence a new provider znode).
		// The weight configurator still names 127.0.0.2, so it applies again.
		greeterNode = zktest.ProviderPath("/dubbo", zkGreeterIface, zkDubbo2URL(zkGreeterIface, "127.0.0.2"))
		zktest.Create(t, greeterProc, greeterNode, []byte("127.0.0.2"), true)
		zktest.Create(t, shopProc, shopNode, zkCuratorInstance(t, zkShopApp, "127.0.0.3"), true)
		waitOwnedClusters(t, view, zkHosts, "the re-registrations", registered, 10*time.Second)
	})
	if t.Failed() {
		return
	}

	t.Run("ZooKeeper outage and restart", func(t *testing.T) {
		stopAt := time.Now()
		z.Stop()
		var st registryStatus
		servers.WaitFor(t, 10*time.Second, "the bridge to hold the failed registry", func() error {
			var err error
			if st, err = bridgeRegistry(b, zkRegistryName); err != nil {
				return err
			}
			if st.Connected || !st.Protected || st.Protection == nil || st.Protection.Reason != "failure" {
				return fmt.Errorf("registry status %+v, want not connected, protected for failure", st)
			}
			return nil
		})
		detectedAt := time.Now()
		t.Logf("measure: ZooKeeper stopped -> bridge reports the registry failed and protected %v (%s)",
			detectedAt.Sub(stopAt).Round(time.Millisecond), st.LastError)
		if st.Services != 2 || st.Instances != 2 {
			t.Errorf("bridge serves %d services with %d instances while ZooKeeper is down, want the 2 and 2 it had", st.Services, st.Instances)
		}
		// Nothing may change in Istiod while ZooKeeper is down: the endpoints are there at the end
		// of the hold, and no response since the stop changed them.
		const hold = 3 * time.Second
		time.Sleep(hold)
		s := view.Snapshot()
		if err := ownedClustersMatch(s, zkHosts, registered); err != nil {
			t.Fatalf("%v after ZooKeeper stopped: %v", time.Since(stopAt).Round(time.Millisecond), err)
		}
		// The view marks an EDS change when a cluster's endpoints change or its cluster goes, so
		// this also catches endpoints that went and came back during the hold. (CDS is not
		// compared: config of other tests in the shared API server may touch every cluster.)
		for _, c := range slices.Sorted(maps.Keys(registered)) {
			if at := s.Changed[xdsview.EDS][c]; at.After(stopAt) {
				t.Errorf("endpoints of %s changed %v after ZooKeeper stopped", c, at.Sub(stopAt).Round(time.Millisecond))
			}
		}
		t.Logf("Istiod kept every endpoint for %v after the bridge detected the outage", time.Since(detectedAt).Round(time.Millisecond))

		restartAt := time.Now()
		z.Restart()
		upAt := time.Now()
		// The providers' sessions (10 s) outlive the outage, so their ephemeral znodes survive;
		// a provider that starts now registers through the restored server and must show up.
		for name, c := range map[string]*zk.Conn{"greeter": greeterProc, "shop": shopProc} {
			servers.WaitFor(t, 15*time.Second, name+" provider session after the restart", func() error {
				if s := c.State(); s != zk.StateHasSession {
					return fmt.Errorf("state %v", s)
				}
				return nil
			})
		}
		newProc := zktest.Session(t, z.Addr())
		zktest.Create(t, newProc, zktest.ProviderPath("/dubbo", zkGreeterIface, zkDubbo2URL(zkGreeterIface, "127.0.0.4")), []byte("127.0.0.4"), true)
		want := zkWantAll()
		// 127.0.0.4 gets Dubbo's default weight: the configurator names 127.0.0.2 only.
		want[outboundCluster(zkGreeterHost, zkDubboPort, "")] = append(want[outboundCluster(zkGreeterHost, zkDubboPort, "")],
			xdsview.Endpoint{Address: "127.0.0.4:20880", Weight: zkDefaultWeight})
		seen := waitOwnedClusters(t, view, zkHosts, "convergence after the restart", want, 20*time.Second)
		servers.WaitFor(t, 10*time.Second, "the registry to recover", func() error {
			st, err := bridgeRegistry(b, zkRegistryName)
			if err != nil {
				return err
			}
			if !st.Connected || st.Protected {
				return fmt.Errorf("registry status %+v, want connected and not protected", st)
			}
			return nil
		})
		t.Logf("measure: ZooKeeper restart took %v; new provider in the sidecar view %v after ZooKeeper was up",
			upAt.Sub(restartAt).Round(time.Millisecond), seen.Sub(upAt).Round(time.Millisecond))
	})
}

// TestZooKeeperEmptyApplication reproduces a bridge bug (it fails until fixed): when a Dubbo 3
// application's last instance leaves and /services/<app> stays, the ZooKeeper adapter keeps the
// application as a service with no instances, on purpose, but that service has no ports either
// (an application's ports come from its instances' dubbo.endpoints). translate then emits a
// ServiceEntry without ports, which Istio accepts and turns into no cluster at all, and, with no
// TCP port left, it folds the alias into that ServiceEntry as a second host instead of giving it
// its own. So the "kept" application is gone from the mesh anyway, and the alias host moves from
// one ServiceEntry to another and back as the application scales to zero and up.
//
// Either outcome is coherent and passes: withdraw the application (as a Dubbo 2 interface without
// providers is withdrawn), or keep it with the ports it had, so that Istio keeps its clusters with
// empty endpoints; in both, the alias keeps a ServiceEntry of its own or has none.
func TestZooKeeperEmptyApplication(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, "./cmd/mcp-bridge"), Config: zkBridgeConfig(z.Addr(), "inline")})
	proc := zktest.Session(t, z.Addr())
	node := "/services/" + zkShopApp + "/127.0.0.3:20880"
	zktest.Create(t, proc, node, zkCuratorInstance(t, zkShopApp, "127.0.0.3"), true)
	zktest.Create(t, admin, "/dubbo/mapping/"+zkCartIface, []byte(zkShopApp), false)
	wantPorts := []string{"tcp-dubbo/20880/TCP", "grpc-tri/50051/GRPC"}
	check := func(instances int) error {
		var errs []error
		hosts := map[string]bool{}
		for _, se := range zkBridgeServiceEntries(t, b) {
			if !slices.Contains(se.Spec.Hosts, zkShopHost) && !slices.Contains(se.Spec.Hosts, zkCartHost) {
				continue
			}
			for _, h := range se.Spec.Hosts {
				hosts[h] = true
			}
			if len(se.Spec.Hosts) != 1 {
				errs = append(errs, fmt.Errorf("ServiceEntry %s has hosts %v: the alias host moved into the application's ServiceEntry", se.Metadata.Name, se.Spec.Hosts))
			}
			if got := se.ports(); !slices.Equal(got, wantPorts) {
				errs = append(errs, fmt.Errorf("ServiceEntry %s has ports %v, want %v (a ServiceEntry without ports makes no cluster in Istio)", se.Metadata.Name, got, wantPorts))
			}
			if len(se.Spec.Endpoints) != instances {
				errs = append(errs, fmt.Errorf("ServiceEntry %s has %d endpoints, want %d", se.Metadata.Name, len(se.Spec.Endpoints), instances))
			}
		}
		if instances > 0 && (!hosts[zkShopHost] || !hosts[zkCartHost]) {
			errs = append(errs, fmt.Errorf("ServiceEntry hosts %v, want %s and %s", slices.Sorted(maps.Keys(hosts)), zkShopHost, zkCartHost))
		}
		return errors.Join(errs...)
	}
	servers.WaitFor(t, 10*time.Second, "the application and its alias", func() error { return check(1) })
	zktest.Delete(t, proc, node)
	servers.WaitFor(t, 10*time.Second, "the application without instances", func() error {
		for _, se := range zkBridgeServiceEntries(t, b) {
			if slices.Contains(se.Spec.Hosts, zkShopHost) && len(se.Spec.Endpoints) > 0 {
				return fmt.Errorf("ServiceEntry %s still has %d endpoints", se.Metadata.Name, len(se.Spec.Endpoints))
			}
		}
		return nil
	})
	if err := check(0); err != nil {
		t.Errorf("after the application's last instance left:\n%v", err)
	}
}

// TestZooKeeperBridgeRestartDuringOutage: a bridge that restarts while ZooKeeper is down must not
// wipe the ZooKeeper services from Istiod. Its adapter reports the registry failed at the first
// failed dial; had the bridge then answered Istiod's reconnect with empty ServiceEntry and
// WorkloadEntry collections, Istiod would have deleted what it held, which is what empty
// protection exists to prevent (docs/registries.md#empty-protection). The bridge keeps each registry's
// last-known services in a state file and restores them at start (merge.Merger.Restore), so it
// answers with what Istiod already has; without a state file it would not answer at all until
// the registry synced or protection.initialSyncTimeout passed.
func TestZooKeeperBridgeRestartDuringOutage(t *testing.T) {
	t.Parallel()
	// The bridge keeps its registries' last-known services in a state file, as the shipped
	// manifests configure it (on an emptyDir), and restores them at start.
	stateConfig := fmt.Sprintf("state:\n  file: %s\n  interval: 200ms\n", filepath.Join(t.TempDir(), "state.json.gz"))
	z, _, b, _, view := zkStartWith(t, "inline", stateConfig)
	proc := zktest.Session(t, z.Addr())
	const host = "com.example.restartprobe" // a host no other test uses
	zktest.Create(t, proc, zktest.ProviderPath("/dubbo", "com.example.RestartProbe", zkDubbo2URL("com.example.RestartProbe", "127.0.0.5")), nil, true)
	c := outboundCluster(host, zkDubboPort, "")
	view.WaitClusterEndpoints(t, c, []string{"127.0.0.5:20880"}, 20*time.Second)

	z.Stop()
	servers.WaitFor(t, 10*time.Second, "the bridge to hold the failed registry", func() error {
		st, err := bridgeRegistry(b, zkRegistryName)
		if err == nil && !st.Protected {
			err = fmt.Errorf("registry status %+v, want protected", st)
		}
		return err
	})
	// Restart by hand rather than with Bridge.Restart, which waits for /readyz: a fixed bridge may
	// well stay unready until its registry has been read.
	b.Process.Stop(5 * time.Second)
	restartedAt := time.Now()
	servers.Start(t, "mcp-bridge", exec.Command(suite.Build(t, "./cmd/mcp-bridge"),
		"serve", "--mcp-addr", b.MCPAddr, "--admin-addr", b.AdminAddr, "--config", b.ConfigFile))
	servers.WaitFor(t, 10*time.Second, "Istiod to reconnect to the restarted bridge", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		body, err := b.Admin(ctx, "/debug/clients")
		if err != nil {
			return err
		}
		var page struct {
			Clients []json.RawMessage `json:"clients"`
		}
		if err := json.Unmarshal(body, &page); err != nil || len(page.Clients) == 0 {
			return fmt.Errorf("no MCP client (%v): %s", err, body)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // what the restarted bridge serves reaches the view within ~0.3 s
	s := view.Snapshot()
	if err := xdsview.EndpointsEqual(s, c, []string{"127.0.0.5:20880"}); err != nil {
		t.Errorf("%v after a bridge restart with ZooKeeper down: %v", time.Since(restartedAt).Round(time.Millisecond), err)
	}
	if at := s.Changed[xdsview.EDS][c]; at.After(restartedAt) {
		t.Errorf("endpoints of %s changed %v after the bridge restarted", c, at.Sub(restartedAt).Round(time.Millisecond))
	}
	// What Istiod kept, the bridge serves: the registry's services restored from the state file,
	// flagged stale and held for the failure, not merely an unanswered stream.
	if st, err := bridgeRegistry(b, zkRegistryName); err != nil {
		t.Error(err)
	} else if !st.Stale || !st.Protected || st.Services != 1 || st.Instances != 1 {
		t.Errorf("restarted bridge's registry status %+v; want its 1 service / 1 instance restored, stale and protected", st)
	}
}

// zkStart starts ZooKeeper, the bridge reading it and an Istiod fed by the bridge (and k8s://, as
// the shipped mesh config lists both), and connects a sidecar view. The returned ZooKeeper client
// is a persistent-node writer such as Dubbo Admin.
func zkStart(t *testing.T, mode string) (*servers.ZooKeeper, *zk.Conn, *servers.Bridge, *servers.ControlPlane, *xdsview.View) {
	t.Helper()
	return zkStartWith(t, mode, "")
}

// zkStartWith is zkStart with extra top-level sections appended to the bridge configuration.
func zkStartWith(t *testing.T, mode, extraConfig string) (*servers.ZooKeeper, *zk.Conn, *servers.Bridge, *servers.ControlPlane, *xdsview.View) {
	t.Helper()
	bin := suite.Build(t, "./cmd/mcp-bridge")
	suite.Cluster(t)
	start := time.Now()
	z := servers.StartZooKeeper(t)
	// A first session before the bridge starts: ZooKeeper answers "ruok" before it serves
	// sessions, and a bridge dialing in that moment would report its registry failed at start.
	admin := zktest.Session(t, z.Addr())
	zkAt := time.Now()
	// The bridge first: Istiod exits when an xds:// source does not answer at its start.
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: zkBridgeConfig(z.Addr(), mode) + extraConfig})
	bridgeAt := time.Now()
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
	istiodAt := time.Now()
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	t.Logf("measure: start-up: zookeeper serving %v, bridge ready %v, istiod ready %v",
		zkAt.Sub(start).Round(time.Millisecond), bridgeAt.Sub(zkAt).Round(time.Millisecond), istiodAt.Sub(bridgeAt).Round(time.Millisecond))
	return z, admin, b, cp, view
}

// zkBridgeConfig is the bridge configuration: one ZooKeeper registry with a short resync and fast
// reconnects (so the test does not wait on default back-offs), in the given endpoint mode.
func zkBridgeConfig(addr, mode string) string {
	return fmt.Sprintf(`registries:
  - name: %s
    type: zookeeper
    zookeeper:
      servers: [%q]
      resyncInterval: 3s
      reconnectBackoff: 100ms
      reconnectBackoffMax: 500ms
translate:
  endpointMode: %s
`, zkRegistryName, addr, mode)
}

// zkWantAll is the expected state after the initial registrations: Greeter on 127.0.0.2 with the
// configurator's weight; shop on 127.0.0.3, dubbo and tri, as itself and as its alias Cart.
func zkWantAll() map[string][]xdsview.Endpoint {
	shop := func(port int) []xdsview.Endpoint {
		return []xdsview.Endpoint{{Address: fmt.Sprintf("127.0.0.3:%d", port), Weight: zkDefaultWeight}}
	}
	return map[string][]xdsview.Endpoint{
		outboundCluster(zkGreeterHost, zkDubboPort, ""): {{Address: "127.0.0.2:20880", Weight: zkOverrideWeight}},
		outboundCluster(zkShopHost, zkDubboPort, ""):    shop(zkDubboPort),
		outboundCluster(zkShopHost, zkTriPort, ""):      shop(zkTriPort),
		outboundCluster(zkCartHost, zkDubboPort, ""):    shop(zkDubboPort),
		outboundCluster(zkCartHost, zkTriPort, ""):      shop(zkTriPort),
	}
}

// zkCheckWorkloadEntries checks, in Istiod's config store, that the registry's instances arrived as
// WorkloadEntries in workloadEntry mode and inline (no WorkloadEntries) otherwise: the subtests
// would otherwise pass alike if the mode were ignored.
func zkCheckWorkloadEntries(t *testing.T, i *servers.Istiod, workloadEntries bool, addresses ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := i.Debug(ctx, "/debug/configz")
	if err != nil {
		t.Fatal(err)
	}
	var objs []struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			Address string `json:"address"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &objs); err != nil {
		t.Fatalf("decoding /debug/configz: %v", err)
	}
	var got []string
	for _, o := range objs {
		if o.Kind == "WorkloadEntry" && o.Metadata.Namespace == zkRegistryName {
			got = append(got, o.Spec.Address)
		}
	}
	slices.Sort(got)
	got = slices.Compact(got) // a WorkloadEntry per (service, instance): shop's serves its alias too
	var want []string
	if workloadEntries {
		want = addresses
	}
	if !slices.Equal(got, want) {
		t.Errorf("Istiod holds WorkloadEntries in %s for %v, want %v", zkRegistryName, got, want)
	}
}

// zkDubbo2URL is the provider URL a Dubbo 2.7 provider of iface on ip registers: no weight
// parameter (Dubbo's default, 100), the volatile timestamp and pid.
func zkDubbo2URL(iface, ip string) string {
	return fmt.Sprintf("dubbo://%s:%d/%s?anyhost=true&application=greeter-provider&deprecated=false&dubbo=2.0.2&dynamic=true"+
		"&generic=false&interface=%s&methods=greet,greetAll&pid=4242&release=2.7.23&side=provider&timestamp=%d",
		ip, zkDubboPort, iface, iface, time.Now().UnixMilli())
}

// zkCuratorInstance is the Curator ServiceInstance JSON a Dubbo 3 application writes at
// /services/<app>/<ip:port>: a dubbo port 20880 and a Triple port 50051 in dubbo.endpoints.
func zkCuratorInstance(t *testing.T, app, ip string) []byte {
	t.Helper()
	id := fmt.Sprintf("%s:%d", ip, zkDubboPort)
	now := time.Now().UnixMilli()
	b, err := json.Marshal(map[string]any{
		"name":    app,
		"id":      id,
		"address": ip,
		"port":    zkDubboPort,
		"sslPort": nil,
		"payload": map[string]any{
			"@class": "org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
			"id":     id,
			"name":   app,
			"metadata": map[string]string{
				"dubbo.endpoints":             fmt.Sprintf(`[{"port":%d,"protocol":"dubbo"},{"port":%d,"protocol":"tri"}]`, zkDubboPort, zkTriPort),
				"dubbo.metadata.revision":     "3f1c2a9d8e7b6a5c4d3e2f1a0b9c8d7e",
				"dubbo.metadata.storage-type": "local",
				"timestamp":                   fmt.Sprint(now),
			},
		},
		"registrationTimeUTC": now,
		"serviceType":         "DYNAMIC",
		"uriSpec":             nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zkServiceEntry is the part of a ServiceEntry in the bridge's /debug/resources this test reads.
type zkServiceEntry struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Hosts []string `yaml:"hosts"`
		Ports []struct {
			Number   int    `yaml:"number"`
			Name     string `yaml:"name"`
			Protocol string `yaml:"protocol"`
		} `yaml:"ports"`
		Endpoints []struct {
			Address string `yaml:"address"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// ports renders the ports as name/number/protocol, in order.
func (se zkServiceEntry) ports() []string {
	out := []string{}
	for _, p := range se.Spec.Ports {
		out = append(out, fmt.Sprintf("%s/%d/%s", p.Name, p.Number, p.Protocol))
	}
	return out
}

// zkBridgeServiceEntries returns the ServiceEntries the bridge serves (its /debug/resources).
func zkBridgeServiceEntries(t *testing.T, b *servers.Bridge) []zkServiceEntry {
	t.Helper()
	var out []zkServiceEntry
	for _, se := range decodeYAMLStream[zkServiceEntry](t, "/debug/resources", bridgeAdmin(t, b, "/debug/resources")) {
		if se.Kind == "ServiceEntry" {
			out = append(out, se)
		}
	}
	return out
}
