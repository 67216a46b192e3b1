package eureka

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// liveInterval is the delta interval of the live tests; liveBound is what each change may take
// to reach the sink: one interval, Polaris's own 1 s cache refresh (refreshInterval in
// e2e/servers/polaris.go), and slack for a loaded 2-core machine.
const (
	liveInterval = 300 * time.Millisecond
	liveBound    = 6 * time.Second
)

func liveConfig(servers ...string) Config {
	return Config{Servers: servers, Interval: liveInterval, Timeout: 2 * time.Second}
}

// estate is registered as Spring Cloud Netflix registers instances: metadata, secure ports,
// zones, several statuses, a Dubbo 3 application through Spring Cloud metadata.
func estate() []springInstance {
	return []springInstance{
		{App: "ORDERS", ID: "10.0.0.1:orders:8080", IP: "10.0.0.1", Port: 8080, SecurePort: 8443,
			Metadata: map[string]string{"management.port": "8081", "zone": "zone-a", "version": "v1"}},
		{App: "ORDERS", ID: "10.0.0.2:orders:8080", IP: "10.0.0.2", Port: 8080, SecurePort: 8443, Status: StatusDown,
			Metadata: map[string]string{"zone": "zone-b", "version": "v1"}},
		{App: "USERS", ID: "10.0.1.1:users:9000", IP: "10.0.1.1", Port: 9000, Status: StatusStarting, VIP: "users-vip"},
		// Only one USERS instance enables its secure port: https is left out (see commonPorts).
		{App: "USERS", ID: "10.0.1.2:users:9000", IP: "10.0.1.2", Port: 9000, SecurePort: 9443, VIP: "users-vip",
			Metadata: map[string]string{"version": "v2", "timestamp": "1700000000000"}},
		{App: "SHOP-ORDER", ID: "10.0.2.1:shop-order:20880", IP: "10.0.2.1", Port: 20880,
			Metadata: map[string]string{"dubbo.endpoints": `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`, "dubbo.metadata.revision": "r1"}},
	}
}

func wantCounts(s *testkit.RecordSink, want map[string]int) error {
	for name, n := range want {
		svc := service(s, name)
		if svc == nil || len(svc.Instances) != n {
			return fmt.Errorf("%s: want %d instances, have %v", name, n, svc)
		}
	}
	return nil
}

func TestPolarisEstate(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	for _, in := range estate() {
		register(t, p.EurekaURL(), in)
	}
	a, sink := startAdapter(t, liveConfig(p.EurekaURL()))
	waitFor(t, 20*time.Second, "every registered instance", func() error {
		return wantCounts(sink, map[string]int{"ORDERS": 2, "USERS": 2, "SHOP-ORDER": 1})
	})
	golden.Compare(t, filepath.Join("testdata", "estate.json"), mustJSON(t, services(sink)))
	golden.Compare(t, filepath.Join("testdata", "estate-resources.json"), mustJSON(t, resources(t, services(sink))))
	if rejects, _ := sink.Rejects(); len(rejects) != 0 {
		t.Errorf("rejected: %v", rejects)
	}
	if w := a.Describe()["sync"].(status).PortWarnings; len(w) != 1 || !strings.Contains(w["USERS"], "https on 1 of 2 instances (10.0.1.2:users:9000)") {
		t.Errorf("port warnings %v, want USERS's https on 1 of 2 instances", w)
	}

	// The same server read as XML and with identity vip.
	t.Run("vip", func(t *testing.T) {
		cfg := liveConfig(p.EurekaURL())
		cfg.Identity = IdentityVIP
		_, vsink := startAdapter(t, cfg)
		waitFor(t, 20*time.Second, "vip services", func() error {
			return wantCounts(vsink, map[string]int{"ORDERS": 2, "users-vip": 2, "SHOP-ORDER": 1})
		})
	})
}

// TestPolarisLive: register, status override to OUT_OF_SERVICE and back, metadata change and
// cancel each reach the sink within liveBound, and at rest only deltas are fetched.
func TestPolarisLive(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	url := p.EurekaURL()
	o1 := springInstance{App: "ORDERS", ID: "o1", IP: "10.0.0.1", Port: 8080, Metadata: map[string]string{"version": "v1"}}
	register(t, url, o1)
	a, sink := startAdapter(t, liveConfig(url))
	waitFor(t, 20*time.Second, "the first instance", func() error { return wantCounts(sink, map[string]int{"ORDERS": 1}) })

	o2 := springInstance{App: "ORDERS", ID: "o2", IP: "10.0.0.2", Port: 8080, Metadata: map[string]string{"version": "v1"}}
	instanceOf := func(id string) *registry.Instance {
		if s := service(sink, "ORDERS"); s != nil {
			for i := range s.Instances {
				if s.Instances[i].ID == id {
					return &s.Instances[i]
				}
			}
		}
		return nil
	}
	steps := []struct {
		name   string
		change func()
		done   func() error
	}{
		{"register", func() { register(t, url, o2) }, func() error {
			if in := instanceOf("o2"); in == nil || !in.Healthy || !in.Enabled {
				return fmt.Errorf("o2 is %+v", in)
			}
			return nil
		}},
		{"out of service", func() { setStatus(t, url, "ORDERS", "o2", StatusOutOfService) }, func() error {
			if in := instanceOf("o2"); in == nil || in.Enabled || in.Healthy {
				return fmt.Errorf("o2 is %+v", in)
			}
			return nil
		}},
		{"back in service", func() { setStatus(t, url, "ORDERS", "o2", "") }, func() error {
			if in := instanceOf("o2"); in == nil || !in.Enabled || !in.Healthy {
				return fmt.Errorf("o2 is %+v", in)
			}
			return nil
		}},
		{"metadata change", func() {
			o2.Metadata = map[string]string{"version": "v2"}
			register(t, url, o2) // Spring Cloud re-registers an instance whose metadata changed
		}, func() error {
			if in := instanceOf("o2"); in == nil || in.Labels["version"] != "v2" {
				return fmt.Errorf("o2 is %+v", in)
			}
			return nil
		}},
		{"cancel", func() { cancel(t, url, "ORDERS", "o2") }, func() error {
			if in := instanceOf("o2"); in != nil {
				return fmt.Errorf("o2 is still there: %+v", in)
			}
			return nil
		}},
	}
	for _, st := range steps {
		st.change()
		took := waitFor(t, liveBound, st.name, st.done)
		t.Logf("%s reached the sink after %v (interval %v)", st.name, took.Round(time.Millisecond), liveInterval)
	}
	// Polaris lists a cancel as DELETED in its delta when the instance was seen in an earlier
	// delta; one registered and cancelled between two of its cache refreshes it leaves out, and
	// the hash code then forces a full fetch. Either way the cancel arrives: log which it was.
	t.Logf("after the steps: %+v", a.Describe()["sync"])

	// At rest: deltas only.
	before := a.Describe()["sync"].(status)
	time.Sleep(5 * liveInterval)
	after := a.Describe()["sync"].(status)
	if after.FullFetches != before.FullFetches || after.Deltas <= before.Deltas {
		t.Errorf("at rest: full fetches %d -> %d, deltas %d -> %d; want deltas only", before.FullFetches, after.FullFetches, before.Deltas, after.Deltas)
	}
}
