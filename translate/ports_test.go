package translate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

func TestServicePorts(t *testing.T) {
	inst := func(ports ...map[string]uint32) []registry.Instance {
		out := make([]registry.Instance, len(ports))
		for i, p := range ports {
			out[i] = registry.Instance{ID: fmt.Sprint(i), Ports: p}
		}
		return out
	}
	dubbo := registry.Port{Name: "dubbo", Protocol: registry.ProtocolDubbo}
	tri := registry.Port{Name: "tri", Protocol: registry.ProtocolTriple}
	http := registry.Port{Name: "http", Protocol: registry.ProtocolHTTP}
	for _, tc := range []struct {
		name       string
		ports      []registry.Port
		instances  []registry.Instance
		configured map[registry.Protocol]uint32
		want       string
		notes      string
	}{
		{"configured wins over instances", []registry.Port{dubbo}, inst(map[string]uint32{"dubbo": 20881}), DefaultServicePorts(), "tcp-dubbo/TCP/20880", ""},
		{"most common", []registry.Port{http}, inst(map[string]uint32{"http": 9090}, map[string]uint32{"http": 8080}, map[string]uint32{"http": 8080}), nil, "http/HTTP/8080", ""},
		{"tie goes low", []registry.Port{http}, inst(map[string]uint32{"http": 9090}, map[string]uint32{"http": 8080}), nil, "http/HTTP/8080", ""},
		{"no instances", []registry.Port{http, tri}, nil, nil, "http/HTTP/80 grpc-tri/GRPC/50051", ""},
		{"extra port named", []registry.Port{http, {Name: "Management", Protocol: registry.ProtocolHTTP}},
			inst(map[string]uint32{"http": 8080, "Management": 8081}), nil, "http/HTTP/8080 http-management/HTTP/8081", ""},
		{"tcp without number is dropped", []registry.Port{{Name: "metrics", Protocol: registry.ProtocolTCP}}, nil, nil, "", "port-dropped"},
		{"unknown protocol", []registry.Port{{Name: "rpc", Protocol: "thrift"}}, inst(map[string]uint32{"rpc": 9000}), nil, "tcp-rpc/TCP/9000", "unknown-protocol"},
		// dubbo and tri on one number (Dubbo 3 port unification, tri not configured): the main
		// port of the earlier protocol keeps it.
		{"number conflict", []registry.Port{tri, dubbo}, inst(map[string]uint32{"dubbo": 20880, "tri": 20880}),
			map[registry.Protocol]uint32{registry.ProtocolDubbo: 20880}, "tcp-dubbo/TCP/20880 grpc-tri/GRPC/20881", "port-conflict"},
		{"name conflict", []registry.Port{{Name: "Admin", Protocol: registry.ProtocolHTTP}, {Name: "admin", Protocol: registry.ProtocolHTTP}},
			inst(map[string]uint32{"Admin": 1, "admin": 2}), nil, "http-admin/HTTP/1 http-admin-" + shortHash("admin") + "/HTTP/2", "port-conflict"},
		{"duplicate declaration", []registry.Port{http, http}, inst(map[string]uint32{"http": 80}), nil, "http/HTTP/80", "port-dropped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n notes
			s := &registry.Service{Ports: tc.ports, Instances: tc.instances}
			var got []string
			for _, p := range servicePorts(s, tc.configured, &n) {
				got = append(got, fmt.Sprintf("%s/%s/%d", p.name, p.proto, p.number))
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("ports %q, want %q", g, tc.want)
			}
			var reasons []string
			for _, w := range n.warnings(istio.Warning{}) {
				reasons = append(reasons, w.Reason)
			}
			if g := strings.Join(reasons, ","); g != tc.notes {
				t.Errorf("notes %q, want %q", g, tc.notes)
			}
		})
	}
}
