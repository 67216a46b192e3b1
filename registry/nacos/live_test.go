package nacos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// v1 calls the Nacos v1 HTTP API, as Nacos 1.x clients (and heart-beating v2 HTTP clients) do.
func v1(addr, method, path string, form url.Values) error {
	req, err := http.NewRequest(method, "http://"+addr+"/nacos"+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, body)
	}
	return nil
}

// heartbeats registers an ephemeral instance over the v1 HTTP API and beats for it until stop is
// closed: the instance's health then rests on the beats, as for Nacos 1.x clients.
func heartbeats(t *testing.T, addr, service, ip string, port int, stop <-chan struct{}) {
	t.Helper()
	if err := v1(addr, http.MethodPost, "/v1/ns/instance", url.Values{
		"serviceName": {service}, "ip": {ip}, "port": {fmt.Sprint(port)}, "ephemeral": {"true"},
		"weight": {"1"}, "healthy": {"true"}, "enabled": {"true"}, "metadata": {"{}"},
	}); err != nil {
		t.Fatalf("registering a heart-beating instance: %v", err)
	}
	beat, _ := json.Marshal(map[string]any{"serviceName": DefaultGroup + "@@" + service, "ip": ip, "port": port, "cluster": defaultCluster})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = v1(addr, http.MethodPut, "/v1/ns/instance/beat", url.Values{"serviceName": {DefaultGroup + "@@" + service}, "beat": {string(beat)}})
			}
		}
	}()
}

func appKey(name string) registry.Key {
	return registry.Key{Kind: registry.KindApplication, Namespace: PublicNamespace, Group: DefaultGroup, Name: name}
}

func host(name string) string { return name + ".default-group.public.nacos" }

// instancesAre checks a service's instances, rendered "address:port/weight/healthy/enabled".
func instancesAre(want ...string) func(*registry.Service) error {
	return func(s *registry.Service) error {
		var got []string
		for _, in := range s.Instances {
			var port uint32
			for _, p := range in.Ports {
				port = p
			}
			got = append(got, fmt.Sprintf("%s:%d/%d/%v/%v", in.Address, port, in.Weight, in.Healthy, in.Enabled))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("instances %q, want %q", got, want)
		}
		return nil
	}
}

// TestPolarisLiveChanges drives every kind of change through the real server, the adapter, the
// merge layer, translate and the MCP server to an ADS client.
func TestPolarisLiveChanges(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()

	// A Nacos 1.x style instance whose health rests on heart-beats, started first: Polaris only
	// marks it unhealthy ~15s after the last beat (3 x its 5s TTL), once its checker's start-up
	// grace has passed.
	stopBeats := make(chan struct{})
	heartbeats(t, addr, "legacy", "10.0.5.1", 8080, stopBeats)
	stock := newApp(t, addr, PublicNamespace)
	register(t, stock, vo.RegisterInstanceParam{ServiceName: "stock", Ip: "10.0.6.1", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})

	pl := startPipeline(t)
	cfg := testConfig(t, addr) // no periodic re-read: every change below arrives as a push
	r := startAdapter(t, cfg, nil, pl.sink)
	r.waitSynced(t, 20*time.Second)
	const wait = 15 * time.Second
	r.sink.waitService(t, wait, appKey("stock"), instancesAre("10.0.6.1:8080/100/true/true"))
	pl.ads.waitEndpoints(t, wait, host("stock"), "[10.0.6.1[http=8080]w100]")
	close(stopBeats) // the heart-beats stop now; the unhealthy verdict is checked at the end

	// A service created after start appears within one poll interval of the server listing it.
	app1 := newApp(t, addr, PublicNamespace)
	registered := time.Now()
	register(t, app1, vo.RegisterInstanceParam{ServiceName: "orders", Ip: "10.0.0.1", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})
	r.sink.waitService(t, wait, appKey("orders"), instancesAre("10.0.0.1:8080/100/true/true"))
	// Polaris lists a new service after its ~1s cache refresh; the adapter adds at most one poll.
	if took := time.Since(registered); took > cfg.PollInterval+2*time.Second {
		t.Errorf("new service took %v to appear, more than one poll interval (%v) after Polaris' ~1s listing delay", took, cfg.PollInterval)
	}
	pl.ads.waitEndpoints(t, wait, host("orders"), "[10.0.0.1[http=8080]w100]")

	app2 := newApp(t, addr, PublicNamespace)
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
		register(t, app2, p)
		r.sink.waitService(t, wait, appKey("orders"), func(s *registry.Service) error {
			if err := instancesAre(step.instances...)(s); err != nil {
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
	r.sink.waitService(t, wait, appKey("orders"), instancesAre("10.0.0.1:8080/100/true/true"))
	pl.ads.waitEndpoints(t, wait, host("orders"), "[10.0.0.1[http=8080]w100]")

	// Health: the heart-beats stopped above.
	r.sink.waitService(t, 40*time.Second, appKey("legacy"), instancesAre("10.0.5.1:8080/100/false/true"))
	pl.ads.waitEndpoints(t, wait, host("legacy"), "[]")
	t.Log("heart-beat loss: reached the MCP client")

	// The server dies: the registry is reported failed and nothing is removed.
	before := r.sink.services()
	n := r.sink.nEvents()
	p.Kill()
	waitFor(t, wait, "the adapter to report the failure", func() error {
		for _, e := range r.sink.eventsSince(n) {
			if e.op == "fail" {
				return nil
			}
		}
		return fmt.Errorf("no Fail yet")
	})
	time.Sleep(3 * cfg.PollInterval)
	for _, e := range r.sink.eventsSince(n) {
		if e.op != "fail" {
			t.Errorf("while the server is down the adapter sent %s", e.op)
		}
	}
	if d := r.a.Describe()["status"].(status); d.Reachable || d.LastError == "" {
		t.Errorf("status while down: %+v", d)
	}
	if up := testutil.ToFloat64(r.a.met.up); up != 0 {
		t.Errorf("mcp_bridge_nacos_up = %v while the server is down", up)
	}
	pl.ads.waitEndpoints(t, time.Second, host("stock"), "[10.0.6.1[http=8080]w100]")

	// It comes back: the applications re-register, the adapter re-reads everything and sends it
	// whole; the state converges to what was there before.
	p.Restart()
	waitFor(t, 30*time.Second, "the recovery Replace", func() error {
		for _, e := range r.sink.eventsSince(n) {
			if e.op == "replace" {
				return nil
			}
		}
		return fmt.Errorf("no Replace yet")
	})
	r.sink.waitService(t, wait, appKey("stock"), instancesAre("10.0.6.1:8080/100/true/true"))
	after := r.sink.services()
	if string(mustJSON(t, before)) != string(mustJSON(t, after)) {
		t.Errorf("state after restart differs:\nbefore %s\nafter %s", mustJSON(t, before), mustJSON(t, after))
	}
	pl.ads.waitEndpoints(t, wait, host("stock"), "[10.0.6.1[http=8080]w100]")
	if d := r.a.Describe()["status"].(status); !d.Reachable || d.Recovering {
		t.Errorf("status after recovery: %+v", d)
	}
	if up, resyncs := testutil.ToFloat64(r.a.met.up), testutil.ToFloat64(r.a.met.resyncs); up != 1 || resyncs != 1 {
		t.Errorf("after recovery mcp_bridge_nacos_up = %v, resyncs = %v; want 1 and 1 (the recovery re-read)", up, resyncs)
	}
}
