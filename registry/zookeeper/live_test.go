package zookeeper

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// providerConn is a ZooKeeper session of its own, like a Dubbo provider's, optionally through a
// network the test can cut.
func providerConn(t testing.TB, addr string, sessionTimeout time.Duration, sw *netSwitch) *zk.Conn {
	t.Helper()
	dial := (&netSwitch{}).dial
	if sw != nil {
		dial = sw.dial
	}
	return zktest.Connect(t, addr, sessionTimeout, zk.WithDialer(dial))
}

func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			}
		}
		return sum
	}
	return 0
}

func liveURL(ip string, port int, extra string) string {
	u := fmt.Sprintf("dubbo://%s:%d/com.example.Live?application=live-provider&interface=com.example.Live&methods=hello&side=provider&timestamp=%d", ip, port, time.Now().UnixMilli())
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func wantInstances(r *runningAdapter, key registry.Key, ids ...string) func() error {
	return func() error {
		got := instanceIDs(r.sink.Get(key))
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			return fmt.Errorf("instances %v, want %v", got, ids)
		}
		return nil
	}
}

// TestLive drives a real ZooKeeper as Dubbo applications do and checks what the adapter reports.
// The subtests share one server, each under its own chroot.
func TestLive(t *testing.T) {
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	key := dubboKey("com.example.Live", "", "")

	t.Run("register and deregister, reads proportional to the change", func(t *testing.T) {
		const root = "/t-register"
		// Unrelated interfaces: a change must not make the adapter read them again.
		for i := 0; i < 40; i++ {
			zktest.Create(t, admin, zktest.ProviderPath(root+"/dubbo", fmt.Sprintf("com.example.Other%d", i), fmt.Sprintf("dubbo://10.9.0.%d:20880/com.example.Other%d?interface=com.example.Other%d", i+1, i, i)), nil, false)
		}
		zktest.MkdirAll(t, admin, root+"/dubbo/com.example.Live/providers", zk.WorldACL(zk.PermAll))
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, ResyncInterval: -1})
		r.waitSynced(t)
		if n := len(r.sink.Services()); n != 40 {
			t.Fatalf("%d services after the first sync, want 40", n)
		}
		prov := providerConn(t, z.Addr(), 10*time.Second, nil)
		before := r.a.m.readsTotal.Load()
		p1 := zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.0.1", 20880, ""))
		zktest.Create(t, prov, p1, []byte("10.0.0.1"), true)
		r.sink.Wait(t, 10*time.Second, "the provider", wantInstances(r, key, "10.0.0.1:20880"))
		if d := r.a.m.readsTotal.Load() - before; d > 3 {
			t.Errorf("a new provider cost %d znode reads, want at most 3 (the providers list, maybe the interface node)", d)
		}
		p2 := zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.0.2", 20880, "weight=30"))
		zktest.Create(t, prov, p2, nil, true)
		r.sink.Wait(t, 10*time.Second, "the second provider", wantInstances(r, key, "10.0.0.1:20880", "10.0.0.2:20880"))
		if w := r.sink.Get(key).Instances[1].Weight; w != 30 {
			t.Errorf("weight %d, want 30", w)
		}
		before = r.a.m.readsTotal.Load()
		zktest.Delete(t, prov, p1)
		r.sink.Wait(t, 10*time.Second, "the first provider to go", wantInstances(r, key, "10.0.0.2:20880"))
		if d := r.a.m.readsTotal.Load() - before; d > 1 {
			t.Errorf("a deregistration cost %d znode reads, want 1", d)
		}
		zktest.Delete(t, prov, p2)
		r.sink.Wait(t, 10*time.Second, "the service to be deleted", func() error {
			if s := r.sink.Get(key); s != nil {
				return fmt.Errorf("still there: %v", instanceIDs(s))
			}
			return nil
		})
		if dels := r.sink.Count("delete"); dels == 0 {
			t.Error("no Delete sent")
		}
	})

	t.Run("configurators change weight and state", func(t *testing.T) {
		const root = "/t-config"
		prov := providerConn(t, z.Addr(), 10*time.Second, nil)
		zktest.Create(t, prov, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.1.1", 20880, "")), nil, true)
		zktest.Create(t, prov, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.1.2", 20880, "")), nil, true)
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, ResyncInterval: -1})
		r.waitSynced(t)
		weights := func(want ...uint32) func() error {
			return func() error {
				s := r.sink.Get(key)
				if s == nil || len(s.Instances) != len(want) {
					return fmt.Errorf("service %v", instanceIDs(s))
				}
				for i, w := range want {
					if s.Instances[i].Weight != w {
						return fmt.Errorf("instance %s weight %d, want %d", s.Instances[i].ID, s.Instances[i].Weight, w)
					}
				}
				return nil
			}
		}
		r.sink.Wait(t, 10*time.Second, "default weights", weights(100, 100))
		// What Dubbo Admin writes to change one provider's weight.
		cfg := root + "/dubbo/com.example.Live/configurators/" + zktest.JavaURLEncode("override://10.0.1.2:20880/com.example.Live?category=configurators&dynamic=false&enabled=true&weight=250")
		zktest.Create(t, admin, cfg, nil, false)
		r.sink.Wait(t, 10*time.Second, "the configured weight", weights(100, 250))
		d := r.a.Describe()["configurators"].([]configuratorStatus)
		if len(d) != 1 || d[0].AppliedTo != 1 {
			t.Errorf("status page configurators %+v, want one applied to 1 instance", d)
		}
		zktest.Delete(t, admin, cfg)
		r.sink.Wait(t, 10*time.Second, "the weight back", weights(100, 100))
		disable := root + "/dubbo/com.example.Live/configurators/" + zktest.JavaURLEncode("override://10.0.1.1:20880/com.example.Live?category=configurators&dynamic=false&disabled=true")
		zktest.Create(t, admin, disable, nil, false)
		r.sink.Wait(t, 10*time.Second, "the provider disabled", func() error {
			if s := r.sink.Get(key); s == nil || s.Instances[0].Enabled {
				return errors.New("10.0.1.1 still enabled")
			}
			return nil
		})
	})

	t.Run("a provider's session expiry removes its endpoint", func(t *testing.T) {
		const root = "/t-expiry"
		zktest.MkdirAll(t, admin, root+"/dubbo/com.example.Live/providers", zk.WorldACL(zk.PermAll))
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, ResyncInterval: -1})
		r.waitSynced(t)
		stable := providerConn(t, z.Addr(), 10*time.Second, nil)
		zktest.Create(t, stable, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.2.1", 20880, "")), nil, true)
		var sw netSwitch
		doomed := providerConn(t, z.Addr(), time.Second, &sw) // the server grants 1 s (2 ticks)
		zktest.Create(t, doomed, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.2.2", 20880, "")), nil, true)
		r.sink.Wait(t, 10*time.Second, "both providers", wantInstances(r, key, "10.0.2.1:20880", "10.0.2.2:20880"))
		cut := time.Now()
		sw.cut() // the provider host drops off the network; ZooKeeper expires its session
		r.sink.Wait(t, 15*time.Second, "the expired provider to go", wantInstances(r, key, "10.0.2.1:20880"))
		t.Logf("endpoint removed %v after the provider's network was cut (session timeout 1 s)", time.Since(cut).Round(10*time.Millisecond))
	})

	t.Run("malformed znodes are reported and never remove good services", func(t *testing.T) {
		const root = "/t-garbage"
		prov := providerConn(t, z.Addr(), 10*time.Second, nil)
		zktest.Create(t, prov, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.3.1", 20880, "")), nil, true)
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, ResyncInterval: -1})
		r.waitSynced(t)
		r.sink.Wait(t, 10*time.Second, "the good provider", wantInstances(r, key, "10.0.3.1:20880"))
		huge := zktest.JavaURLEncode("dubbo://10.0.3.9:20880/com.example.Live?interface=com.example.Live&methods=" + strings.Repeat("m", 100<<10))
		garbage := map[string]string{
			root + "/dubbo/com.example.Live/providers/" + huge:                                                                     "too-long",
			root + "/dubbo/com.example.Live/providers/dubbo%3A%2F%2F%ZZ":                                                           "bad-encoding",
			root + "/dubbo/com.example.Live/providers/not-a-url":                                                                   "bad-url",
			root + "/dubbo/com.example.Live/providers/" + zktest.JavaURLEncode("thrift://10.0.3.8:9090/com.example.Live"):          "unknown-protocol",
			root + "/dubbo/com.example.Live/providers/" + zktest.JavaURLEncode("dubbo://10.0.3.7:20880/com.example.Live?weight=x"): "bad-weight",
			root + "/services/live-app/10.0.3.6:20880":                                                                             "empty-data",
		}
		for p := range garbage {
			zktest.Create(t, admin, p, nil, false)
		}
		r.sink.Wait(t, 10*time.Second, "every malformed znode reported", func() error {
			got := r.rejects()
			for p, reason := range garbage {
				found := false
				for where, rr := range got {
					if rr == reason && strings.HasPrefix(where, p[len(root):len(root)+20]) {
						found = true
					}
				}
				if !found {
					return fmt.Errorf("no %s reject for %s; have %v", reason, truncateName(p), got)
				}
			}
			return nil
		})
		if got := instanceIDs(r.sink.Get(key)); len(got) != 1 {
			t.Errorf("good service now has %v", got)
		}
		for where := range r.rejects() {
			if len(where) > 400 {
				t.Errorf("reject names a %d-byte path; the sample must be cut", len(where))
			}
		}
		failures := r.a.Describe()["parseFailures"].(map[string]failureStat)
		if failures["too-long"].Count != 1 || failures["too-long"].Sample == "" {
			t.Errorf("status page parse failures %+v", failures)
		}
		// A garbled update of a good Curator instance keeps its last good state.
		inst := root + "/services/live-app/10.0.3.5:20880"
		zktest.Create(t, admin, inst, []byte(`{"name":"live-app","id":"10.0.3.5:20880","address":"10.0.3.5","port":20880,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","metadata":{}}}`), false)
		appKey := registry.Key{Kind: registry.KindDubboApplication, Name: "live-app"}
		r.sink.Wait(t, 10*time.Second, "the Dubbo 3 instance", wantInstances(r, appKey, "10.0.3.5:20880"))
		if _, err := admin.Set(inst, []byte("{garbled"), -1); err != nil {
			t.Fatal(err)
		}
		r.sink.Wait(t, 10*time.Second, "the garbled update reported", func() error {
			if r.rejects()["/services/live-app/10.0.3.5:20880"] != "bad-payload" {
				return errors.New("not reported")
			}
			return nil
		})
		if got := instanceIDs(r.sink.Get(appKey)); len(got) != 1 {
			t.Errorf("instance dropped on a garbled update: %v", got)
		}
		// Garbage removed: its reports are withdrawn.
		for p := range garbage {
			zktest.Delete(t, admin, p)
		}
		r.sink.Wait(t, 10*time.Second, "reports withdrawn", func() error {
			if got := r.rejects(); len(got) != 1 {
				return fmt.Errorf("still reported: %v", got)
			}
			return nil
		})
	})

	t.Run("several roots: one interface in two registry groups is one service", func(t *testing.T) {
		const root = "/t-roots"
		prov := providerConn(t, z.Addr(), 10*time.Second, nil)
		zktest.Create(t, prov, zktest.ProviderPath(root+"/dubbo", "com.example.Live", liveURL("10.0.5.1", 20880, "")), nil, true)
		gray := zktest.ProviderPath(root+"/dubbo-gray", "com.example.Live", liveURL("10.0.5.2", 20880, "dubbo.tag=gray"))
		zktest.Create(t, prov, gray, nil, true)
		zktest.Create(t, prov, zktest.ProviderPath(root+"/ignored", "com.example.Live", liveURL("10.0.5.3", 20880, "")), nil, true)
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, DubboRoots: []string{"dubbo", "/dubbo-gray"}, ResyncInterval: -1})
		r.waitSynced(t)
		r.sink.Wait(t, 10*time.Second, "providers of both roots", wantInstances(r, key, "10.0.5.1:20880", "10.0.5.2:20880"))
		zktest.Delete(t, prov, gray)
		r.sink.Wait(t, 10*time.Second, "the gray provider to go", wantInstances(r, key, "10.0.5.1:20880"))
	})

	t.Run("Dubbo 3 application: both ports, mapping aliases, data watches", func(t *testing.T) {
		const root = "/t-app"
		inst := root + "/services/shop/10.0.4.1:20880"
		data := func(extra string) []byte {
			return []byte(`{"name":"shop","id":"10.0.4.1:20880","address":"10.0.4.1","port":20880,"sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"10.0.4.1:20880","name":"shop","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]"` + extra + `}},"registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null}`)
		}
		prov := providerConn(t, z.Addr(), 10*time.Second, nil)
		zktest.Create(t, prov, inst, data(""), true)
		zktest.Create(t, admin, root+"/dubbo/mapping/com.example.Cart", []byte("shop"), false)
		r := startAdapter(t, Config{Servers: []string{z.Addr()}, Chroot: root, ResyncInterval: -1})
		r.waitSynced(t)
		appKey := registry.Key{Kind: registry.KindDubboApplication, Name: "shop"}
		r.sink.Wait(t, 10*time.Second, "the application with both ports and its alias", func() error {
			s := r.sink.Get(appKey)
			if s == nil || len(s.Ports) != 2 || len(s.Instances) != 1 || s.Instances[0].Ports["tri"] != 50051 || s.Instances[0].Ports["dubbo"] != 20880 {
				return fmt.Errorf("service %+v", s)
			}
			if strings.Join(s.Aliases, ",") != "com.example.Cart" {
				return fmt.Errorf("aliases %v", s.Aliases)
			}
			return nil
		})
		if _, err := admin.Set(root+"/dubbo/mapping/com.example.Cart", []byte("shop,other"), -1); err != nil {
			t.Fatal(err)
		}
		zktest.Create(t, admin, root+"/dubbo/mapping/com.example.Order", []byte("shop"), false)
		r.sink.Wait(t, 10*time.Second, "a new mapped interface", func() error {
			if s := r.sink.Get(appKey); s == nil || strings.Join(s.Aliases, ",") != "com.example.Cart,com.example.Order" {
				return fmt.Errorf("aliases %v", s.Aliases)
			}
			return nil
		})
		if _, err := prov.Set(inst, data(`,"dubbo.tag":"gray"`), -1); err != nil {
			t.Fatal(err)
		}
		r.sink.Wait(t, 10*time.Second, "the instance's new tag", func() error {
			if s := r.sink.Get(appKey); s == nil || s.Instances[0].Labels["dubbo-tag"] != "gray" {
				return errors.New("no dubbo-tag label yet")
			}
			return nil
		})
		zktest.Delete(t, prov, inst)
		r.sink.Wait(t, 10*time.Second, "the application empty but kept, with its last ports", func() error {
			s := r.sink.Get(appKey)
			if s == nil || len(s.Instances) != 0 {
				return fmt.Errorf("service %v", instanceIDs(s))
			}
			// Without its ports Istio would build no cluster for it, and its aliases would fold
			// into its ServiceEntry as extra hosts.
			if got := portNames(s); got != "dubbo,tri" {
				return fmt.Errorf("ports %q, want the last ones: dubbo,tri", got)
			}
			return nil
		})
	})
}

func portNames(s *registry.Service) string {
	names := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		names[i] = p.Name
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
