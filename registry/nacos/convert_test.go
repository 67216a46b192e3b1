package nacos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		role role
		key  dubbo.ServiceKey
	}{
		{"user-service", roleApp, dubbo.ServiceKey{}},
		{"providers:com.foo.Bar:1.0.0:g1", roleProvider, dubbo.ServiceKey{Interface: "com.foo.Bar", Version: "1.0.0", Group: "g1"}},
		{"providers:com.foo.Bar::", roleProvider, dubbo.ServiceKey{Interface: "com.foo.Bar"}},
		{"providers:com.foo.Bar", roleProvider, dubbo.ServiceKey{Interface: "com.foo.Bar"}}, // Dubbo before 2.7.3
		{"providers:com.foo.Bar:1.0", roleProvider, dubbo.ServiceKey{Interface: "com.foo.Bar", Version: "1.0"}},
		{"consumers:com.foo.Bar:1.0.0:", roleConsumer, dubbo.ServiceKey{Interface: "com.foo.Bar", Version: "1.0.0"}},
		{"routers:com.foo.Bar::", roleIgnored, dubbo.ServiceKey{Interface: "com.foo.Bar"}},
		{"configurators:com.foo.Bar::", roleIgnored, dubbo.ServiceKey{Interface: "com.foo.Bar"}},
		{"providers:", roleApp, dubbo.ServiceKey{}},
		{"my:app", roleApp, dubbo.ServiceKey{}},
	} {
		r, k := parseName(tc.name)
		if r != tc.role || k != tc.key {
			t.Errorf("parseName(%q) = %v %+v, want %v %+v", tc.name, r, k, tc.role, tc.key)
		}
	}
}

func TestWeight(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want uint32
	}{{1, 100}, {0.5, 50}, {0.25, 25}, {2.5, 250}, {0.001, 1}, {0, 0}, {-1, 0}, {10000, 1000000}, {1e12, 1e9}} {
		if got := weight(tc.in); got != tc.want {
			t.Errorf("weight(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestAppService(t *testing.T) {
	k := subKey{ns: "dev", group: "G", name: "user-service"}
	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		ins     []model.Instance
		ports   string
		inst    string // first instance: id address ports weight locality labels
		rejects int
	}{
		{"spring cloud http", nil,
			[]model.Instance{{Ip: "10.0.0.1", Port: 8080, Weight: 1, Healthy: true, Enable: true, ClusterName: "DEFAULT",
				Metadata: map[string]string{"preserved.register.source": "SPRING_CLOUD", "version": "v1"}}},
			"http/http", "10.0.0.1#8080#DEFAULT 10.0.0.1 map[http:8080] 100  map[nacos.io/cluster:DEFAULT version:v1]", 0},
		{"secure is https; polaris' empty cluster is DEFAULT; noise and credentials dropped", nil,
			[]model.Instance{{Ip: "10.0.0.2", Port: 8443, Weight: 0.5, Healthy: false, Enable: true,
				Metadata: map[string]string{"secure": "true", "internal-nacos-cluster": "", "preserved.heart.beat.timeout": "15000", "user.password": "pw", "db-token": "x"}}},
			"https/https", "10.0.0.2#8443#DEFAULT 10.0.0.2 map[https:8443] 50  map[nacos.io/cluster:DEFAULT secure:true]", 0},
		{"management port only when asked", nil,
			[]model.Instance{{Ip: "10.0.0.3", Port: 8080, Weight: 1, Metadata: map[string]string{"management.port": "8081"}}},
			"http/http", "10.0.0.3#8080#DEFAULT 10.0.0.3 map[http:8080] 100  map[management.port:8081 nacos.io/cluster:DEFAULT]", 0},
		{"management port", func(c *Config) { c.ManagementPort = true },
			[]model.Instance{{Ip: "10.0.0.3", Port: 8080, Weight: 1, Metadata: map[string]string{"management.port": "8081"}}},
			"http/http management/http", "10.0.0.3#8080#DEFAULT 10.0.0.3 map[http:8080 management:8081] 100  map[management.port:8081 nacos.io/cluster:DEFAULT]", 0},
		{"default protocol grpc", func(c *Config) { c.DefaultProtocol = registry.ProtocolGRPC },
			[]model.Instance{{Ip: "10.0.0.4", Port: 9090, Weight: 1}},
			"grpc/grpc", "10.0.0.4#9090#DEFAULT 10.0.0.4 map[grpc:9090] 100  map[nacos.io/cluster:DEFAULT]", 0},
		{"cluster locality, metadata zone wins", func(c *Config) {
			c.Locality = Locality{Clusters: map[string]string{"HZ": "cn-hangzhou/cn-hangzhou-a"}, ZoneKey: "zone"}
		},
			[]model.Instance{{Ip: "10.0.0.5", Port: 80, Weight: 1, ClusterName: "HZ", Metadata: map[string]string{"zone": "cn-hangzhou-b"}}},
			"http/http", "10.0.0.5#80#HZ 10.0.0.5 map[http:80] 100 cn-hangzhou/cn-hangzhou-b map[nacos.io/cluster:HZ zone:cn-hangzhou-b]", 0},
		{"bad address rejected, rest kept", nil,
			[]model.Instance{{Ip: "", Port: 80, Weight: 1}, {Ip: "10.0.0.6", Port: 80, Weight: 1}},
			"http/http", "10.0.0.6#80#DEFAULT 10.0.0.6 map[http:80] 100  map[nacos.io/cluster:DEFAULT]", 1},
		{"address Istio would drop rejected, rest kept", nil,
			[]model.Instance{{Ip: "10.0.0.300", Port: 80, Weight: 1}, {Ip: "my_host", Port: 80, Weight: 1}, {Ip: "10.0.0.7", Port: 80, Weight: 1}},
			"http/http", "10.0.0.7#80#DEFAULT 10.0.0.7 map[http:80] 100  map[nacos.io/cluster:DEFAULT]", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Servers: []string{"x"}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			c := newConverter(cfg.WithDefaults())
			rej := rejects{}
			svc := c.appService(k, tc.ins, rej)
			if svc.Kind != registry.KindApplication || svc.Namespace != "dev" || svc.Group != "G" || svc.Name != "user-service" {
				t.Errorf("identity %+v", svc.Key())
			}
			var ports []string
			for _, p := range svc.Ports {
				ports = append(ports, p.Name+"/"+string(p.Protocol))
			}
			if got := strings.Join(ports, " "); got != tc.ports {
				t.Errorf("ports %q, want %q", got, tc.ports)
			}
			in := svc.Instances[0]
			got := strings.Join([]string{in.ID, in.Address, fmt.Sprint(in.Ports), fmt.Sprint(in.Weight), in.Locality.String(), fmt.Sprint(in.Labels)}, " ")
			if got != tc.inst {
				t.Errorf("instance\n got %q\nwant %q", got, tc.inst)
			}
			if len(rej) != tc.rejects {
				t.Errorf("%d rejects, want %d: %v", len(rej), tc.rejects, rej)
			}
			if err := svc.Validate(); err != nil {
				t.Errorf("invalid service: %v", err)
			}
		})
	}
}

func TestDubboConversion(t *testing.T) {
	c := newConverter(Config{Servers: []string{"x"}}.WithDefaults())
	key := dubbo.ServiceKey{Interface: "com.foo.Bar", Version: "1.0.0", Group: "g"}
	k := subKey{ns: PublicNamespace, group: DefaultGroup, name: "providers:com.foo.Bar:1.0.0:g"}
	md := dubbo2Metadata("com.foo.Bar", "1.0.0", "g", "bar-app", "provider")
	md["weight"] = "50"
	ins := []model.Instance{
		{Ip: "10.0.0.1", Port: 20880, Weight: 1, Healthy: true, Enable: true, Metadata: md},
		// Nacos' own flags count too: weight 0 (the Nacos client skips it), disabled, unhealthy.
		{Ip: "10.0.0.2", Port: 20880, Weight: 0, Healthy: false, Enable: false, Metadata: md},
		// Metadata naming another interface than the service name: rejected.
		{Ip: "10.0.0.3", Port: 20880, Weight: 1, Healthy: true, Enable: true, Metadata: dubbo2Metadata("com.foo.Other", "1.0.0", "g", "x", "provider")},
		// A protocol the mesh cannot route: rejected.
		{Ip: "10.0.0.4", Port: 20880, Weight: 1, Healthy: true, Enable: true, Metadata: map[string]string{"protocol": "injvm", "interface": "com.foo.Bar"}},
	}
	rej := rejects{}
	provs := c.providers(k, key, ins, rej)
	if len(provs) != 2 {
		t.Fatalf("%d providers, want 2 (rejects %v)", len(provs), rej)
	}
	p0, p1 := provs[0].Instance, provs[1].Instance
	if p0.Weight != 50 || !p0.Healthy || !p0.Enabled || p0.ID != "10.0.0.1:20880" || p0.Labels["app"] != "bar-app" {
		t.Errorf("provider 0: %+v", p0)
	}
	for _, drop := range []string{"category", "protocol", "path", "pid", "timestamp", "interface", "methods"} {
		if _, ok := p0.Labels[drop]; ok {
			t.Errorf("label %q kept: %v", drop, p0.Labels)
		}
	}
	if p1.Weight != 0 || p1.Healthy || p1.Enabled {
		t.Errorf("provider 1 should carry Nacos' weight 0, unhealthy, disabled: %+v", p1)
	}
	if rej[instanceWhere(k, &ins[2])].reason != dubbo.ReasonInterfaceMismatch || rej[instanceWhere(k, &ins[3])].reason != dubbo.ReasonUnknownProtocol {
		t.Errorf("rejects %v", rej)
	}

	// Dubbo 3 application-level instances: ports from dubbo.endpoints.
	app := subKey{ns: PublicNamespace, group: DefaultGroup, name: "shop-order"}
	ains := []model.Instance{{Ip: "10.0.1.1", Port: 20880, Weight: 1, Healthy: true, Enable: true, Metadata: dubbo3Metadata("r1")}}
	if !isDubbo3(ains) || isDubbo3(ins[:1]) {
		t.Errorf("isDubbo3 misjudged")
	}
	members := c.appMembers(app, ains, rej)
	if len(members) != 1 || members[0].Instance.Ports["dubbo"] != 20880 || members[0].Instance.Ports["tri"] != 50051 {
		t.Errorf("members %+v", members)
	}
	bad := []model.Instance{{Ip: "10.0.1.2", Port: 20880, Weight: 1, Metadata: map[string]string{"dubbo.endpoints": "not json"}}}
	if m := c.appMembers(app, bad, rej); len(m) != 0 || rej[instanceWhere(app, &bad[0])].reason != dubbo.ReasonBadEndpoints {
		t.Errorf("bad dubbo.endpoints: members %v, rejects %v", m, rej)
	}
}
