package nacos

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// convertResult is everything converting one service's instances yields.
type convertResult struct {
	app       *registry.Service
	members   []dubbo.Member
	providers []dubbo.Provider
	consumers []*dubbo.URL
	rejects   rejects
}

// convertAll converts instances of the Nacos service name as the adapter's state.update does.
func convertAll(c *converter, name string, ins []model.Instance) convertResult {
	k := subKey{ns: PublicNamespace, group: DefaultGroup, name: name}
	r := convertResult{rejects: rejects{}}
	role, key := parseName(name)
	switch role {
	case roleApp:
		if isDubbo3(ins) {
			r.members = c.appMembers(k, ins, r.rejects)
		} else {
			r.app = c.appService(k, ins, r.rejects)
		}
	case roleProvider:
		r.providers = c.providers(k, key, ins, r.rejects)
	case roleConsumer:
		r.consumers = consumerURLs(k, key, ins)
	}
	return r
}

// FuzzConvertInstance: any service name and instance a Nacos server may send (address, port,
// weight, cluster, metadata as JSON) converts without panicking, to the same result every time,
// with ports in range, no credential among the labels, and a reason for every reject. Seeds:
// the metadata Spring Cloud, Dubbo 2.7's NacosRegistry and Dubbo 3 register.
func FuzzConvertInstance(f *testing.F) {
	md := func(m map[string]string) string {
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	spring := md(map[string]string{"preserved.register.source": "SPRING_CLOUD", "secure": "true", "management.port": "8081", "zone": "cn-hangzhou-b"})
	dubbo2 := md(map[string]string{
		"anyhost": "true", "application": "bar-app", "deprecated": "false", "dubbo": "2.0.2", "dynamic": "true",
		"generic": "false", "interface": "com.foo.Bar", "methods": "sayHello,sayHi", "pid": "4242", "release": "2.7.23",
		"side": "provider", "timestamp": "1700000000000", "path": "com.foo.Bar", "version": "1.0.0", "group": "g",
		"category": "providers", "protocol": "dubbo", "weight": "50", "token": "t0ken",
	})
	dubbo3 := md(map[string]string{
		"dubbo.endpoints":                   `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`,
		"dubbo.metadata.revision":           "r1",
		"dubbo.metadata.storage-type":       "local",
		"dubbo.metadata-service.url-params": `{"connections":"1","version":"1.0.0","dubbo":"2.0.2","release":"3.2.10","side":"provider","port":"20880","protocol":"dubbo"}`,
		"timestamp":                         "1700000000000",
	})
	for _, s := range []struct {
		name, ip, cluster, metadata string
		port                        uint64
		weight                      float64
	}{
		{"user-service", "10.0.0.1", "HZ", spring, 8080, 1},
		{"user-service", "", "", "{}", 0, 0},
		{"providers:com.foo.Bar:1.0.0:g", "10.0.0.1", "DEFAULT", dubbo2, 20880, 0.5},
		{"providers:com.foo.Bar", "::1", "", dubbo2, 70000, -1},
		{"consumers:com.foo.Bar:1.0.0:", "10.0.0.2", "", `{"protocol":"consumer","check":"false"}`, 0, 1},
		{"shop-order", "10.0.1.1", "", dubbo3, 20880, 1e12},
		{"shop-order", "fe80::1%eth0", "", `{"dubbo.endpoints":"[{\"port\":1,\"protocol\":\"tri\"},{\"port\":1,\"protocol\":\"tri\"}]"}`, 1, math.NaN()},
	} {
		f.Add(s.name, s.ip, s.port, s.weight, s.cluster, s.metadata)
	}
	cfg := Config{ManagementPort: true, Locality: Locality{Clusters: map[string]string{"HZ": "cn-hangzhou/cn-hangzhou-a"}, ZoneKey: "zone"}}.WithDefaults()
	f.Fuzz(func(t *testing.T, name, ip string, port uint64, weight float64, cluster, metadata string) {
		var m map[string]string
		_ = json.Unmarshal([]byte(metadata), &m) // not JSON: no metadata
		in := model.Instance{Ip: ip, Port: port, Weight: weight, ClusterName: cluster, Healthy: true, Enable: true, Metadata: m}
		// The same instance twice (as a server listing it twice would send) and another address.
		other := in
		other.Ip = "10.9.9.9"
		ins := []model.Instance{in, in, other}
		c := newConverter(cfg)
		r1 := convertAll(c, name, ins)
		r2 := convertAll(c, name, ins)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("two conversions differ:\n%+v\n%+v", r1, r2)
		}
		for where, rj := range r1.rejects {
			if rj.reason == "" || rj.reason == "invalid" || rj.err == nil {
				t.Errorf("reject %s without a reason: %+v", where, rj)
			}
		}
		var insts []registry.Instance
		if r1.app != nil {
			insts = append(insts, r1.app.Instances...)
		}
		for _, mb := range r1.members {
			insts = append(insts, mb.Instance)
		}
		for _, p := range r1.providers {
			insts = append(insts, p.Instance)
		}
		for _, inst := range insts {
			if len(inst.Ports) == 0 {
				t.Errorf("instance %s has no port", inst.ID)
			}
			for pn, n := range inst.Ports {
				if n == 0 || n > 65535 {
					t.Errorf("instance %s port %s is %d", inst.ID, pn, n)
				}
			}
			for k := range inst.Labels {
				if dubbo.IsSensitive(k) {
					t.Errorf("instance %s has credential label %q", inst.ID, k)
				}
			}
		}
	})
}
