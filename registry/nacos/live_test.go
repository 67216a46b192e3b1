package nacos_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// TestPolarisLiveChanges drives every kind of change through the real server and the real bridge
// pipeline (the adapter, merge, bridge with translate, the MCP server) to an ADS client.
func TestPolarisLiveChanges(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()

	// A Nacos 1.x style instance whose health rests on heart-beats, started first: Polaris only
	// marks it unhealthy ~15s after the last beat (3 x its 5s TTL), once its checker's start-up
	// grace has passed.
	stopBeats := make(chan struct{})
	nacostest.Heartbeats(t, addr, "legacy", "10.0.5.1", 8080, stopBeats)
	stock := nacostest.NewApp(t, addr, nacos.PublicNamespace)
	nacostest.Register(t, stock, vo.RegisterInstanceParam{ServiceName: "stock", Ip: "10.0.6.1", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})

	cfg := nacos.ShortConfig(t, addr) // no periodic re-read: every change below arrives as a push
	pl := startPipeline(t, cfg, nil)
	r := pl.rec
	r.WaitSynced(t, 20*time.Second)
	const wait = 15 * time.Second
	r.WaitService(t, wait, nacostest.AppKey("stock"), nacostest.InstancesAre("10.0.6.1:8080/100/true/true"))
	pl.ads.waitEndpoints(t, wait, host("stock"), "[10.0.6.1[http=8080]w100]")
	close(stopBeats) // the heart-beats stop now; the unhealthy verdict is checked at the end

	// A service created after start appears within one poll interval of the server listing it.
	app1 := nacostest.NewApp(t, addr, nacos.PublicNamespace)
	registered := time.Now()
	nacostest.Register(t, app1, vo.RegisterInstanceParam{ServiceName: "orders", Ip: "10.0.0.1", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})
	r.WaitService(t, wait, nacostest.AppKey("orders"), nacostest.InstancesAre("10.0.0.1:8080/100/true/true"))
	// Polaris lists a new service after its ~1s cache refresh; the adapter adds at most one poll.
	if took := time.Since(registered); took > cfg.PollInterval+2*time.Second {
		t.Errorf("new service took %v to appear, more than one poll interval (%v) after Polaris' ~1s listing delay", took, cfg.PollInterval)
	}
	pl.ads.waitEndpoints(t, wait, host("orders"), "[10.0.0.1[http=8080]w100]")

	app2 := nacostest.NewApp(t, addr, nacos.PublicNamespace)
	for _, step := range []struct {
		name      string
		param     vo.RegisterInstanceParam
		instances []string
		endpoints string
		check     func(*registry.Service) error
	}{
		{"register", vo.RegisterInstanceParam{Weight: 1, Enable: true},
			[]string{"10.0.0.1:8080/100/true/true", "10.0.0.2:8080/100/true/true"}, "[10.0.0.1[http=8080]w100 10.0.0.2[http=8080]w100]", nil},
		{"weight change", vo.RegisterInstanceParam{Weight: 3, Enable: true},
			[]string{"10.0.0.1:8080/100/true/true", "10.0.0.2:8080/300/true/true"}, "[10.0.0.1[http=8080]w100 10.0.0.2[http=8080]w300]", nil},
		// Nacos (and Polaris) leave disabled instances out of what subscribers get.
		{"enabled=false", vo.RegisterInstanceParam{Weight: 3, Enable: false},
			[]string{"10.0.0.1:8080/100/true/true"}, "[10.0.0.1[http=8080]w100]", nil},
		{"metadata change", vo.RegisterInstanceParam{Weight: 3, Enable: true, Metadata: map[string]string{"version": "v2"}},
			[]string{"10.0.0.1:8080/100/true/true", "10.0.0.2:8080/300/true/true"}, "[10.0.0.1[http=8080]w100 10.0.0.2[http=8080]w300]",
			func(s *registry.Service) error {
				for _, in := range s.Instances {
					if in.Address == "10.0.0.2" && in.Labels["version"] != "v2" {
						return fmt.Errorf("labels %v lack version=v2", in.Labels)
					}
				}
				return nil
			}},
	} {
		p := step.param
		p.ServiceName, p.Ip, p.Port, p.Healthy, p.Ephemeral = "orders", "10.0.0.2", 8080, true, true
		nacostest.Register(t, app2, p)
		r.WaitService(t, wait, nacostest.AppKey("orders"), func(s *registry.Service) error {
			if err := nacostest.InstancesAre(step.instances...)(s); err != nil {
				return err
			}
			if step.check != nil {
				return step.check(s)
			}
			return nil
		})
		pl.ads.waitEndpoints(t, wait, host("orders"), step.endpoints)
		t.Logf("%s: reached the MCP client", step.name)
	}

	// Deregistration. Down to one instance only: when a service loses its last instance Polaris
	// may keep serving the old list over the Nacos protocol for good (its Nacos view skips a nil
	// instance set), so the drop to zero and the removal of the service are covered against the
	// real Nacos behaviour in TestRealNacosBehaviours.
	if ok, err := app2.DeregisterInstance(vo.DeregisterInstanceParam{ServiceName: "orders", Ip: "10.0.0.2", Port: 8080, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("deregistering: ok=%v err=%v", ok, err)
	}
	r.WaitService(t, wait, nacostest.AppKey("orders"), nacostest.InstancesAre("10.0.0.1:8080/100/true/true"))
	pl.ads.waitEndpoints(t, wait, host("orders"), "[10.0.0.1[http=8080]w100]")

	// Health: the heart-beats stopped above.
	r.WaitService(t, 40*time.Second, nacostest.AppKey("legacy"), nacostest.InstancesAre("10.0.5.1:8080/100/false/true"))
	pl.ads.waitEndpoints(t, wait, host("legacy"), "[]")
	t.Log("heart-beat loss: reached the MCP client")

	// The server dies: the registry is reported failed and nothing is removed.
	before := r.Services()
	n := r.NEvents()
	p.Kill()
	testkit.WaitFor(t, wait, "the adapter to report the failure", func() error {
		for _, e := range r.EventsSince(n) {
			if e.Op == "fail" {
				return nil
			}
		}
		return fmt.Errorf("no Fail yet")
	})
	time.Sleep(3 * cfg.PollInterval)
	for _, e := range r.EventsSince(n) {
		if e.Op != "fail" {
			t.Errorf("while the server is down the adapter sent %s", e.Op)
		}
	}
	if d := pl.status(t); d.Reachable || d.LastError == "" {
		t.Errorf("status while down: %+v", d)
	}
	if up := pl.metric(t, "mcp_bridge_nacos_up"); up != 0 {
		t.Errorf("mcp_bridge_nacos_up = %v while the server is down", up)
	}
	pl.ads.waitEndpoints(t, time.Second, host("stock"), "[10.0.6.1[http=8080]w100]")

	// It comes back: the applications re-register, the adapter re-reads everything and sends it
	// whole; the state converges to what was there before.
	p.Restart()
	testkit.WaitFor(t, 30*time.Second, "the recovery Replace", func() error {
		for _, e := range r.EventsSince(n) {
			if e.Op == "replace" {
				return nil
			}
		}
		return fmt.Errorf("no Replace yet")
	})
	r.WaitService(t, wait, nacostest.AppKey("stock"), nacostest.InstancesAre("10.0.6.1:8080/100/true/true"))
	after := r.Services()
	if string(testkit.MustJSON(t, before)) != string(testkit.MustJSON(t, after)) {
		t.Errorf("state after restart differs:\nbefore %s\nafter %s", testkit.MustJSON(t, before), testkit.MustJSON(t, after))
	}
	pl.ads.waitEndpoints(t, wait, host("stock"), "[10.0.6.1[http=8080]w100]")
	if d := pl.status(t); !d.Reachable || d.Recovering {
		t.Errorf("status after recovery: %+v", d)
	}
	if up, resyncs := pl.metric(t, "mcp_bridge_nacos_up"), pl.metric(t, "mcp_bridge_nacos_resyncs_total"); up != 1 || resyncs != 1 {
		t.Errorf("after recovery mcp_bridge_nacos_up = %v, resyncs = %v; want 1 and 1 (the recovery re-read)", up, resyncs)
	}
}
