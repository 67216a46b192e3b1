package e2e

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// hungRegistry is one registry type under the hung-server test: a real server the test can
// pause, the bridge configuration reading it, and how an application registers there.
type hungRegistry struct {
	server *servers.Process
	config string // the bridge configuration (one registry, named hungRegistryName)
	host   string // the Istio host of the test's service
	port   int    // its service port (the cluster the sidecar view reads)
	// register adds an instance at ip; deregister removes one (called after the resume).
	register   func(t *testing.T, ip string)
	deregister func(t *testing.T, ip string)
	// duringPause, if set, makes the registry lose ip while it is frozen in a way it shows once it
	// runs again (a provider whose session ends); then deregister is not called for ip.
	duringPause func(t *testing.T, ip string)
	// expiry is the session/lease timeout the pause must outlast.
	expiry time.Duration
	// detect bounds the time from the pause to the bridge flagging the registry, from its
	// configured timeouts; back bounds the time from the resume to the first change served.
	detect, back time.Duration
}

const (
	hungRegistryName = "hung"
	hungLeaves       = "127.0.40.2" // the instance that leaves during or after the freeze
)

// hungRegistries are the rows of the per-registry fault tests.
var hungRegistries = []struct {
	name   string
	istiod bool // also check Istiod's EDS through the fault (one row: Istiod is costly)
	start  func(t *testing.T) hungRegistry
}{
	{"zookeeper", true, hungZooKeeper},
	{"nacos", false, hungNacos},
	{"consul", false, hungConsul},
	{"eureka", false, hungEureka},
}

// TestRegistryHung is issue 17's "hung, not dead" and "back fast" for every registry type: the
// server is frozen with SIGSTOP for longer than its session/lease timeout, so connections hang
// instead of failing. Asserted: the bridge flags the registry within its configured timeout; no
// ServiceEntry an MCP client receives meanwhile loses an endpoint (nor, for ZooKeeper, does the
// sidecar view of a real Istiod); after SIGCONT the bridge serves a change within `back`, the
// registry is no longer flagged, and the state converges (including, for ZooKeeper, the
// deregistration of a provider whose session ended during the freeze).
func TestRegistryHung(t *testing.T) {
	t.Parallel()
	for _, row := range hungRegistries {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			hungScenario(t, row.start(t), row.istiod)
		})
	}
}

func hungScenario(t *testing.T, r hungRegistry, withIstiod bool) {
	const keep, leaves, joins = "127.0.40.1", hungLeaves, "127.0.40.3"
	r.register(t, keep)
	r.register(t, leaves)
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage), Config: r.config})
	served := func(want ...string) error { return hungServes(t, b, r.host, want) }
	servers.WaitFor(t, 30*time.Second, "the bridge to serve both instances", func() error { return served(keep, leaves) })
	var view *xdsview.View
	cluster := outboundCluster(r.host, r.port, "")
	if withIstiod {
		cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
		view = xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
		view.WaitClusterEndpoints(t, cluster, []string{hostPort(keep, r.port), hostPort(leaves, r.port)}, 30*time.Second)
	}
	mcp := watchAll(t, b.MCPAddr, hostileTypeURL("ServiceEntry"))

	pausedAt := time.Now()
	if err := r.server.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := r.server.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	if r.duringPause != nil {
		r.duringPause(t, leaves)
	}
	var st registryStatus
	servers.WaitFor(t, r.detect+10*time.Second, "the bridge to flag the frozen registry", func() error {
		var err error
		if st, err = bridgeRegistry(b, hungRegistryName); err != nil {
			return err
		}
		if !st.Protected || st.Protection == nil || st.Protection.Reason != "failure" {
			return fmt.Errorf("registry status %+v, want protected for failure", st)
		}
		return nil
	})
	detected := time.Since(pausedAt)
	t.Logf("measure: frozen -> flagged %v (bound %v): %s", detected.Round(time.Millisecond), r.detect, st.LastError)
	if detected > r.detect {
		t.Errorf("the bridge flagged the frozen registry after %v, want within %v", detected.Round(time.Millisecond), r.detect)
	}
	if m := bridgeMetrics(t, b); metricSum(m, "mcp_bridge_registry_healthy", map[string]string{"registry": hungRegistryName}) != 0 || metricSum(m, "mcp_bridge_registry_protected", map[string]string{"registry": hungRegistryName, "reason": "failure"}) != 1 {
		t.Errorf("mcp_bridge_registry_healthy{registry=%q} is not 0 or its protected{reason=failure} not 1 while the registry is frozen", hungRegistryName)
	}
	// Frozen past the session/lease timeout: whatever expires, expires.
	if rest := r.expiry*2 - time.Since(pausedAt); rest > 0 {
		time.Sleep(rest)
	}
	if err := served(keep, leaves); err != nil {
		t.Errorf("%v frozen: %v", time.Since(pausedAt).Round(time.Millisecond), err)
	}
	resumedAt := time.Now()
	resume()
	r.register(t, joins)
	final := []string{keep, joins}
	switch {
	case r.duringPause != nil:
	case r.deregister != nil:
		r.deregister(t, leaves)
	default:
		final = append(final, leaves)
	}
	servers.WaitFor(t, r.back+20*time.Second, "the first change after the resume", func() error {
		return hungHas(t, b, r.host, joins)
	})
	back := time.Since(resumedAt)
	servers.WaitFor(t, 30*time.Second, "convergence after the resume", func() error { return served(final...) })
	converged := time.Since(resumedAt)
	servers.WaitFor(t, 10*time.Second, "the registry no longer flagged", func() error {
		st, err := bridgeRegistry(b, hungRegistryName)
		if err == nil && st.Protected {
			err = fmt.Errorf("registry status %+v, want not protected", st)
		}
		return err
	})
	st, _ = bridgeRegistry(b, hungRegistryName)
	t.Logf("measure: resumed -> first change served %v (bound %v), converged %v; lastError after recovery %q",
		back.Round(time.Millisecond), r.back, converged.Round(time.Millisecond), st.LastError)
	if back > r.back {
		t.Errorf("the first change after the resume was served %v later, want within %v", back.Round(time.Millisecond), r.back)
	}
	// No ServiceEntry an MCP client received between the freeze and the convergence lacked the
	// instance that stayed, or lacked the leaving one before the change.
	lost := 0
	for _, a := range mcp.since(pausedAt) {
		if !containsString(a.resp, keep) || (!containsString(a.resp, joins) && !containsString(a.resp, leaves)) {
			lost++
			t.Errorf("an MCP response %v after the freeze lacks endpoints", a.at.Sub(pausedAt).Round(time.Millisecond))
		}
	}
	t.Logf("measure: endpoints lost in %d MCP responses since the freeze: %d", len(mcp.since(pausedAt)), lost)
	if view != nil {
		var eps []string
		for _, ip := range final {
			eps = append(eps, hostPort(ip, r.port))
		}
		view.WaitClusterEndpoints(t, cluster, eps, 20*time.Second)
		s := view.Snapshot()
		// EDS may change once, for the change after the resume; never during the freeze.
		if at := s.Changed[xdsview.EDS][cluster]; at.Before(resumedAt) && at.After(pausedAt) {
			t.Errorf("Istiod's endpoints of %s changed %v into the freeze", cluster, at.Sub(pausedAt).Round(time.Millisecond))
		}
	}
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// hungServes checks the bridge's /debug/resources: the ServiceEntries of host have endpoints at
// exactly the given addresses.
func hungServes(t *testing.T, b *servers.Bridge, host string, want []string) error {
	var got []string
	for _, se := range zkBridgeServiceEntries(t, b) {
		if slices.Contains(se.Spec.Hosts, host) {
			for _, e := range se.Spec.Endpoints {
				got = append(got, e.Address)
			}
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		return fmt.Errorf("the bridge serves %s at %v, want %v", host, got, want)
	}
	return nil
}

func hungHas(t *testing.T, b *servers.Bridge, host, ip string) error {
	for _, se := range zkBridgeServiceEntries(t, b) {
		if slices.Contains(se.Spec.Hosts, host) && slices.ContainsFunc(se.Spec.Endpoints, func(e struct {
			Address string `yaml:"address"`
		}) bool {
			return e.Address == ip
		}) {
			return nil
		}
	}
	return fmt.Errorf("the bridge does not serve %s at %s yet", host, ip)
}

func bridgeMetrics(t *testing.T, b *servers.Bridge) string {
	t.Helper()
	return string(bridgeAdmin(t, b, "/metrics"))
}

// mcpLog keeps every response a well-behaved MCP client (seWatch) received.
type mcpLog struct {
	mu   sync.Mutex
	all  []seArrival
	done chan struct{}
}

func watchAll(t *testing.T, addr, typeURL string) *mcpLog {
	w := watchServiceEntries(t, addr, typeURL)
	l := &mcpLog{done: make(chan struct{})}
	go func() {
		for {
			select {
			case a := <-w.arrivals:
				l.mu.Lock()
				l.all = append(l.all, a)
				l.mu.Unlock()
			case <-w.done:
				return
			case <-l.done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(l.done) })
	return l
}

func (l *mcpLog) since(at time.Time) []seArrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []seArrival
	for _, a := range l.all {
		if a.at.After(at) {
			out = append(out, a)
		}
	}
	return out
}

// hungZooKeeper: a Dubbo 2 interface; each instance is a provider with its own session. The
// leaving provider's is 2 s and its process dies (connection closed) during the freeze: its
// ephemeral znode goes when ZooKeeper, running again, expires that session. The others' 30 s
// sessions outlive the freeze. The bridge's own session is
// 2 s (go-zookeeper notices a silent server after 2/3 of it).
func hungZooKeeper(t *testing.T) hungRegistry {
	z := servers.StartZooKeeper(t)
	zktest.Session(t, z.Addr()) // ZooKeeper serves sessions before the bridge dials
	const iface = "com.example.Hung"
	procs := map[string]*zk.Conn{}
	var mu sync.Mutex
	return hungRegistry{
		server: z.Process(),
		config: fmt.Sprintf("registries:\n  - name: %s\n    type: zookeeper\n    zookeeper:\n      servers: [%q]\n      sessionTimeout: 2s\n      reconnectBackoff: 100ms\n      reconnectBackoffMax: 30s\n      resyncInterval: 1m\n",
			hungRegistryName, z.Addr()),
		host: "com.example.hung", port: zkDubboPort,
		register: func(t *testing.T, ip string) {
			// The provider that leaves has a session shorter than the freeze; the others outlive it.
			session := 30 * time.Second
			if ip == hungLeaves {
				session = 2 * time.Second
			}
			c := zktest.Connect(t, z.Addr(), session)
			mu.Lock()
			procs[ip] = c
			mu.Unlock()
			zktest.Create(t, c, zktest.ProviderPath("/dubbo", iface, zkDubbo2URL(iface, ip)), nil, true)
		},
		duringPause: func(t *testing.T, ip string) {
			mu.Lock()
			c := procs[ip]
			mu.Unlock()
			go c.Close() // the provider process dies: its close waits on the frozen server
		},
		expiry: 2 * time.Second, detect: 4 * time.Second, back: 4 * time.Second,
	}
}

// hungNacos: a Spring Cloud service on the Nacos protocol (Polaris). The instances are ephemeral
// gRPC registrations. No deregistration: a frozen server cannot be told of one, and after the
// freeze Polaris keeps listing an instance its client deregistered (seen: still listed 15 s after
// a successful DeregisterInstance, by Polaris' own HTTP list), so convergence cannot be shown
// with it; the change after the resume is a new registration.
func hungNacos(t *testing.T) hungRegistry {
	p := servers.StartPolaris(t)
	app := nacosApp(t, p.NacosAddr())
	const service = "hung"
	return hungRegistry{
		server: p.Process(),
		config: strings.Replace(nacosBridgeConfig(p.NacosAddr(), t.TempDir()), "name: "+nacosRegistryName, "name: "+hungRegistryName, 1),
		host:   "hung.default-group.public.nacos", port: nacosHTTPPort,
		register: func(t *testing.T, ip string) {
			nacosRegister(t, app, nacosSpringInstance(service, ip, nacosHTTPPort, 1, false))
		},
		expiry: 5 * time.Second, detect: 6 * time.Second, back: 5 * time.Second,
	}
}

// hungConsul: a Spring Cloud Consul service with TTL checks long enough to outlast the freeze.
func hungConsul(t *testing.T) hungRegistry {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl, err := api.NewClient(&api.Config{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return hungRegistry{
		server: agent.Process(),
		config: fmt.Sprintf("registries:\n  - name: %s\n    type: consul\n    consul:\n      address: %s\n      timeout: 2s\n      recoveryDelay: 1s\n",
			hungRegistryName, agent.Addr()),
		host: "hung.dc1.consul", port: 8080,
		register: func(t *testing.T, ip string) {
			servers.WaitFor(t, 10*time.Second, "registering "+ip, func() error {
				return cl.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "hung-" + ip, Name: "hung", Address: ip, Port: 8080,
					Check: &api.AgentServiceCheck{CheckID: "check:" + ip, TTL: "10m", Status: api.HealthPassing}})
			})
		},
		deregister: func(t *testing.T, ip string) {
			servers.WaitFor(t, 10*time.Second, "deregistering "+ip, func() error { return cl.Agent().ServiceDeregister("hung-" + ip) })
		},
		expiry: 3 * time.Second, detect: 4 * time.Second, back: 4 * time.Second,
	}
}

// hungEureka: a Eureka application on Polaris' Eureka API, read by delta every 300 ms with a 1 s
// request timeout (registry/refresh: a failed read backs off, a probe every 2 s notices the
// return). Polaris is the same server as the Nacos row's, so the same 5 s it is frozen past.
func hungEureka(t *testing.T) hungRegistry {
	p := servers.StartPolaris(t)
	url := p.EurekaURL()
	return hungRegistry{
		server: p.Process(),
		config: fmt.Sprintf("registries:\n  - name: %s\n    type: eureka\n    eureka:\n      servers: [%q]\n      interval: 300ms\n      timeout: 1s\n",
			hungRegistryName, url),
		host: "hung.eureka", port: 8080,
		register: func(t *testing.T, ip string) {
			eurekaRegister(t, url, "HUNG", "hung-"+ip, ip, "UP", false)
		},
		deregister: func(t *testing.T, ip string) {
			// Taken out of service, not cancelled: after a freeze, Polaris keeps listing a cancelled
			// instance (seen: still in its own GET /eureka/apps/HUNG 20 s after a successful DELETE).
			eurekatest.SetStatus(t, url, "HUNG", "hung-"+ip, "OUT_OF_SERVICE")
		},
		expiry: 5 * time.Second, detect: 4 * time.Second, back: 6 * time.Second,
	}
}
