package eureka

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func inst(id, status string, mut ...func(*instance)) instance {
	in := instance{ID: id, App: "ORDERS", IPAddr: "10.0.0.1", HostName: "h1", Status: status, Port: 8080, PortEnabled: true}
	for _, m := range mut {
		m(&in)
	}
	return in
}

// TestConvertInstance covers the status semantics, ports, labels and locality of one instance.
func TestConvertInstance(t *testing.T) {
	md := func(kv map[string]string) func(*instance) {
		return func(in *instance) { in.Metadata = encodeMetadata(kv) }
	}
	tests := []struct {
		name     string
		cfg      func(*Config)
		in       instance
		want     registry.Instance
		rejected string // reason, if the instance is rejected
	}{
		{"up", nil, inst("a", "UP"), registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"down is no endpoint", nil, inst("a", "DOWN"), registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Enabled: true}, ""},
		{"starting is no endpoint", nil, inst("a", "STARTING"), registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Enabled: true}, ""},
		{"starting with statuses [UP, STARTING]", func(c *Config) { c.Statuses = []string{"UP", "STARTING"} }, inst("a", "STARTING"),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"out of service is disabled", nil, inst("a", "OUT_OF_SERVICE"), registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100}, ""},
		{"overriddenStatus wins", nil, inst("a", "UP", func(in *instance) { in.OverriddenStatus = "OUT_OF_SERVICE" }),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100}, ""},
		{"overriddenStatus UNKNOWN is no override", nil, inst("a", "UP", func(in *instance) { in.OverriddenStatus = "UNKNOWN" }),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"secure port", nil, inst("a", "UP", func(in *instance) { in.SecurePort, in.SecurePortEnable = 8443, true }),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080, "https": 8443}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"secure port only", nil, inst("a", "UP", func(in *instance) { in.PortEnabled, in.SecurePort, in.SecurePortEnable = false, 443, true }),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"https": 443}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"disabled secure port ignored", nil, inst("a", "UP", func(in *instance) { in.SecurePort = 443 }),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"labels and zone", nil, inst("a", "UP", md(map[string]string{"version": "v1", "zone": "zone-a", "campus": "", "timestamp": "123", "password": "x"})),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true,
				Labels: map[string]string{"version": "v1", "zone": "zone-a"}, Locality: registry.Locality{Zone: "zone-a"}}, ""},
		{"amazon availability zone", nil, inst("a", "UP", func(in *instance) { in.DataCenter, in.AvailabilityZone = "Amazon", "us-east-1c" }, md(map[string]string{"zone": "ignored"})),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true,
				Labels: map[string]string{"zone": "ignored"}, Locality: registry.Locality{Region: "us-east-1", Zone: "us-east-1c"}}, ""},
		{"management port", func(c *Config) { c.ManagementPort = true }, inst("a", "UP", md(map[string]string{"management.port": "8081"})),
			registry.Instance{ID: "a", Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080, "management": 8081}, Weight: 100, Healthy: true, Enabled: true,
				Labels: map[string]string{"management.port": "8081"}}, ""},
		{"host name when no ip", nil, inst("a", "UP", func(in *instance) { in.IPAddr, in.HostName = "", "orders-1.example.com" }),
			registry.Instance{ID: "a", Address: "orders-1.example.com", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true}, ""},
		{"bad address", nil, inst("a", "UP", func(in *instance) { in.IPAddr, in.HostName = "", "bad_host" }), registry.Instance{}, ReasonBadAddress},
		{"no port", nil, inst("a", "UP", func(in *instance) { in.PortEnabled = false }), registry.Instance{}, ReasonNoPort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Servers: []string{"http://x/eureka"}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			c := newConverter(cfg.WithDefaults())
			st := newState()
			st.put("ORDERS", tc.in)
			svcs, rej := c.convert(st)
			if tc.rejected != "" {
				if r, ok := rej["ORDERS/a"]; !ok || r.reason != tc.rejected {
					t.Fatalf("rejections %v, want ORDERS/a %s", rej, tc.rejected)
				}
				if len(svcs) != 1 || len(svcs[0].Instances) != 0 {
					t.Errorf("a rejected instance was sent: %+v", svcs)
				}
				return
			}
			if len(rej) != 0 || len(svcs) != 1 || len(svcs[0].Instances) != 1 {
				t.Fatalf("services %+v, rejections %v", svcs, rej)
			}
			if err := svcs[0].Validate(); err != nil {
				t.Errorf("invalid service: %v", err)
			}
			if got := svcs[0].Instances[0]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("instance\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestDeltaAndCache applies deltas as Netflix's client does and checks that only changed
// applications are rebuilt (unchanged ones keep their pointer).
func TestDeltaAndCache(t *testing.T) {
	c := newConverter(Config{Servers: []string{"http://x/eureka"}}.WithDefaults())
	st := newState()
	st.replaceAll(apps{Apps: []app{
		{Name: "ORDERS", Instances: []instance{inst("o1", "UP"), inst("o2", "DOWN")}},
		{Name: "USERS", Instances: []instance{inst("u1", "UP")}},
	}})
	if got := st.hash(); got != "DOWN_1_UP_2_" {
		t.Fatalf("hash %q", got)
	}
	first, _ := c.convert(st)
	// An unchanged full fetch marks nothing dirty.
	st.replaceAll(apps{Apps: []app{
		{Name: "ORDERS", Instances: []instance{inst("o2", "DOWN"), inst("o1", "UP")}},
		{Name: "USERS", Instances: []instance{inst("u1", "UP")}},
	}})
	same, _ := c.convert(st)
	if len(same) != 2 || same[0] != first[0] || same[1] != first[1] {
		t.Fatalf("an unchanged full fetch rebuilt services")
	}
	n := st.applyDelta(apps{Apps: []app{
		{Name: "ORDERS", Instances: []instance{
			inst("o2", "UP", func(in *instance) { in.Action = ActionModified }),
			inst("o3", "UP", func(in *instance) { in.Action = ActionAdded }),
		}},
		{Name: "USERS", Instances: []instance{inst("u1", "UP", func(in *instance) { in.Action = ActionDeleted })}},
		// A MODIFIED that changes nothing the bridge keeps.
		{Name: "ORDERS", Instances: []instance{inst("o1", "UP", func(in *instance) { in.Action = ActionModified })}},
	}})
	if n != 3 {
		t.Errorf("applyDelta changed %d instances, want 3", n)
	}
	if got := st.hash(); got != "UP_3_" {
		t.Errorf("hash after delta %q, want UP_3_", got)
	}
	after, _ := c.convert(st)
	if len(after) != 1 || after[0].Name != "ORDERS" || len(after[0].Instances) != 3 {
		t.Fatalf("after delta: %+v", after)
	}
	if after[0] == first[0] {
		t.Errorf("changed ORDERS kept its old pointer")
	}
	if _, ok := st.apps["USERS"]; ok {
		t.Errorf("USERS, with its last instance deleted, is still in the state")
	}
}

func TestIdentityAndFilters(t *testing.T) {
	st := func() *state {
		s := newState()
		s.replaceAll(apps{Apps: []app{
			{Name: "ORDERS", Instances: []instance{inst("o1", "UP", func(in *instance) { in.VIPAddress = "orders,shop" })}},
			{Name: "ORDERS-ADMIN", Instances: []instance{inst("a1", "UP", func(in *instance) { in.VIPAddress = "shop" })}},
			{Name: "USERS", Instances: []instance{inst("u1", "UP")}},
		}})
		return s
	}
	tests := []struct {
		name     string
		cfg      Config
		want     map[string]int // service name -> instances
		rejected []string
	}{
		{"app", Config{}, map[string]int{"ORDERS": 1, "ORDERS-ADMIN": 1, "USERS": 1}, nil},
		{"apps and exclude", Config{Apps: []string{"ORDERS.*", "USERS"}, Exclude: []string{".*-ADMIN"}}, map[string]int{"ORDERS": 1, "USERS": 1}, nil},
		{"vip", Config{Identity: IdentityVIP}, map[string]int{"orders": 1, "shop": 2}, []string{"USERS/u1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Servers = []string{"http://x/eureka"}
			svcs, rej := newConverter(tc.cfg.WithDefaults()).convert(st())
			got := map[string]int{}
			for _, s := range svcs {
				got[s.Name] = len(s.Instances)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("services %v, want %v", got, tc.want)
			}
			var gotRej []string
			for w := range rej {
				gotRej = append(gotRej, w)
			}
			if !reflect.DeepEqual(gotRej, tc.rejected) {
				t.Errorf("rejected %v, want %v", gotRej, tc.rejected)
			}
		})
	}
}

// TestDubbo3 maps a Dubbo 3 application registered through Spring Cloud's Eureka registry.
func TestDubbo3(t *testing.T) {
	st := newState()
	st.put("SHOP-ORDER", inst("s1", "UP", func(in *instance) {
		in.Metadata = encodeMetadata(map[string]string{"dubbo.endpoints": `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`, "dubbo.metadata.revision": "abc"})
	}))
	svcs, rej := newConverter(Config{Servers: []string{"http://x/eureka"}}.WithDefaults()).convert(st)
	if len(rej) != 0 || len(svcs) != 1 {
		t.Fatalf("services %+v rejections %v", svcs, rej)
	}
	s := svcs[0]
	if s.Kind != registry.KindDubboApplication || len(s.Instances) != 1 || s.Instances[0].Ports["dubbo"] != 20880 || s.Instances[0].Ports["tri"] != 50051 || !s.Instances[0].Healthy {
		t.Errorf("service %+v", s)
	}
}

// TestMixedPorts: a port only some instances of an application enable is served by none, with
// a warning naming those instances; with no port common to all, the more common one is served
// and the instances without it are rejected. Istio would otherwise send the port's traffic to
// the other instances on the service's port number (https on 8443 to instances serving http).
func TestMixedPorts(t *testing.T) {
	secure := func(in *instance) { in.SecurePort, in.SecurePortEnable = 8443, true }
	secureOnly := func(in *instance) { in.PortEnabled, in.SecurePort, in.SecurePortEnable = false, 8443, true }
	mgmt := func(in *instance) { in.Metadata = encodeMetadata(map[string]string{"management.port": "8081"}) }
	tests := []struct {
		name      string
		instances []instance
		ports     []string          // the service's ports
		endpoints map[string]string // instance -> its ports, rendered
		rejected  []string
		warning   string // substring of the service's warning; "" for none
	}{
		{"every instance secure", []instance{inst("a", "UP", secure), inst("b", "DOWN", secure)},
			[]string{"http", "https"}, map[string]string{"a": "http=8080 https=8443", "b": "http=8080 https=8443"}, nil, ""},
		{"some secure: https left out, named", []instance{inst("a", "UP", secure), inst("b", "UP"), inst("c", "UP", secure)},
			[]string{"http"}, map[string]string{"a": "http=8080", "b": "http=8080", "c": "http=8080"}, nil, "https on 2 of 3 instances (a, c)"},
		{"a DOWN instance without it counts too", []instance{inst("a", "UP", secure), inst("b", "DOWN")},
			[]string{"http"}, map[string]string{"a": "http=8080", "b": "http=8080"}, nil, "https on 1 of 2 instances (a)"},
		{"some management ports", []instance{inst("a", "UP", mgmt), inst("b", "UP")},
			[]string{"http"}, map[string]string{"a": "http=8080", "b": "http=8080"}, nil, "management on 1 of 2 instances (a)"},
		{"no common port: the more common one", []instance{inst("a", "UP", secureOnly), inst("b", "UP", secureOnly), inst("c", "UP")},
			[]string{"https"}, map[string]string{"a": "https=8443", "b": "https=8443"}, []string{"ORDERS/c"}, "http on 1 of 3 instances (c), https on 2 of 3 instances (a, b)"},
		{"no common port, a tie: http", []instance{inst("a", "UP", secureOnly), inst("c", "UP")},
			[]string{"http"}, map[string]string{"c": "http=8080"}, []string{"ORDERS/a"}, "serves [http] only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConverter(Config{Servers: []string{"http://x/eureka"}, ManagementPort: true}.WithDefaults())
			st := newState()
			for _, in := range tc.instances {
				st.put("ORDERS", in)
			}
			svcs, rej := c.convert(st)
			if len(svcs) != 1 {
				t.Fatalf("services %+v", svcs)
			}
			var ports []string
			for _, p := range svcs[0].Ports {
				ports = append(ports, p.Name)
			}
			if !reflect.DeepEqual(ports, tc.ports) {
				t.Errorf("ports %v, want %v", ports, tc.ports)
			}
			got := map[string]string{}
			for _, in := range svcs[0].Instances {
				var ps []string
				for _, p := range []string{"http", "https", "management"} {
					if n, ok := in.Ports[p]; ok {
						ps = append(ps, fmt.Sprintf("%s=%d", p, n))
					}
				}
				got[in.ID] = strings.Join(ps, " ")
			}
			if !reflect.DeepEqual(got, tc.endpoints) {
				t.Errorf("instances %v, want %v", got, tc.endpoints)
			}
			var gotRej []string
			for w, r := range rej {
				if r.reason != ReasonNoCommonPort {
					t.Errorf("%s rejected for %s", w, r.reason)
				}
				gotRej = append(gotRej, w)
			}
			if !reflect.DeepEqual(gotRej, tc.rejected) {
				t.Errorf("rejected %v, want %v", gotRej, tc.rejected)
			}
			w := c.warnings()["ORDERS"]
			if tc.warning == "" && w != "" || !strings.Contains(w, tc.warning) {
				t.Errorf("warning %q, want one containing %q", w, tc.warning)
			}
			if err := svcs[0].Validate(); err != nil {
				t.Errorf("invalid service: %v", err)
			}
		})
	}
}
