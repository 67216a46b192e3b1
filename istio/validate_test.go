package istio

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// TestValidation checks the rules against cases from Istio's own validation tests
// (pkg/config/validation TestValidateServiceEntries, TestValidateWorkloadEntry) for the fields the
// bridge emits. An outside cross-check ran these validators and Istio's side by side on 200k random
// entries (see the package report): they agree, except where ours are stricter on purpose.
func TestValidation(t *testing.T) {
	port := func(name, proto string, n uint32) *networking.ServicePort {
		return &networking.ServicePort{Name: name, Protocol: proto, Number: n}
	}
	se := func(mod func(*networking.ServiceEntry)) resourceSpec {
		s := &networking.ServiceEntry{Hosts: []string{"a.example"}, Location: networking.ServiceEntry_MESH_INTERNAL,
			Resolution: networking.ServiceEntry_STATIC, Ports: []*networking.ServicePort{port("http", "HTTP", 80)}}
		mod(s)
		return resourceSpec{&Resource{Collection: CollectionServiceEntry, Namespace: "ns", Name: "a.example"}, s}
	}
	we := func(mod func(*networking.WorkloadEntry)) resourceSpec {
		w := &networking.WorkloadEntry{Address: "10.0.0.1", Ports: map[string]uint32{"http": 8080}, Labels: map[string]string{"app": "a"}}
		mod(w)
		return resourceSpec{&Resource{Collection: CollectionWorkloadEntry, Namespace: "ns", Name: "a.example.x"}, w}
	}
	ep := func(addr string, ports map[string]uint32) []*networking.WorkloadEntry {
		return []*networking.WorkloadEntry{{Address: addr, Ports: ports}}
	}
	for _, tc := range []struct {
		name string
		r    resourceSpec
		want string // reason of the first problem; "" for valid
	}{
		{"valid", se(func(*networking.ServiceEntry) {}), ""},
		{"no hosts", se(func(s *networking.ServiceEntry) { s.Hosts = nil }), ReasonInvalidHost},
		{"wildcard", se(func(s *networking.ServiceEntry) { s.Hosts = []string{"*"} }), ReasonInvalidHost},
		{"underscore host", se(func(s *networking.ServiceEntry) { s.Hosts = []string{"a_b.example"} }), ReasonInvalidHost},
		{"colon host (Higress form)", se(func(s *networking.ServiceEntry) { s.Hosts = []string{"providers:com.Foo:1.0:"} }), ReasonInvalidHost},
		{"vip", se(func(s *networking.ServiceEntry) { s.Addresses = []string{"240.0.0.1"} }), ""},
		{"bad vip", se(func(s *networking.ServiceEntry) { s.Addresses = []string{"240.0.0.256"} }), ReasonInvalidAddress},
		{"cidr with dns", se(func(s *networking.ServiceEntry) {
			s.Addresses, s.Resolution = []string{"10.0.0.0/8"}, networking.ServiceEntry_DNS
		}), ReasonInvalidAddress},
		{"port name", se(func(s *networking.ServiceEntry) { s.Ports = []*networking.ServicePort{port("tcp_dubbo", "TCP", 20880)} }), ReasonInvalidPortName},
		{"port protocol", se(func(s *networking.ServiceEntry) { s.Ports = []*networking.ServicePort{port("dubbo", "DUBBO", 20880)} }), ReasonInvalidProtocol},
		{"port number", se(func(s *networking.ServiceEntry) { s.Ports = []*networking.ServicePort{port("http", "HTTP", 0)} }), ReasonInvalidPort},
		{"duplicate port number", se(func(s *networking.ServiceEntry) {
			s.Ports = append(s.Ports, port("http-admin", "HTTP", 80))
		}), ReasonDuplicatePort},
		{"duplicate port name", se(func(s *networking.ServiceEntry) { s.Ports = append(s.Ports, port("http", "HTTP", 81)) }), ReasonDuplicatePort},
		{"two hosts http", se(func(s *networking.ServiceEntry) { s.Hosts = append(s.Hosts, "b.example") }), ""},
		{"two hosts https", se(func(s *networking.ServiceEntry) {
			s.Hosts, s.Ports = append(s.Hosts, "b.example"), []*networking.ServicePort{port("https", "HTTPS", 443)}
		}), ""},
		{"two hosts tcp", se(func(s *networking.ServiceEntry) {
			s.Hosts, s.Ports = append(s.Hosts, "b.example"), []*networking.ServicePort{port("tcp-dubbo", "TCP", 20880)}
		}), ReasonMultipleHostsTCP},
		{"static endpoint ip", se(func(s *networking.ServiceEntry) { s.Endpoints = ep("10.0.0.1", map[string]uint32{"http": 8080}) }), ""},
		{"static endpoint ipv6", se(func(s *networking.ServiceEntry) { s.Endpoints = ep("2001:db8::1", nil) }), ""},
		{"static endpoint name", se(func(s *networking.ServiceEntry) { s.Endpoints = ep("host.example", nil) }), ReasonInvalidAddress},
		{"dns endpoint name", se(func(s *networking.ServiceEntry) {
			s.Resolution, s.Endpoints = networking.ServiceEntry_DNS, ep("host.example", nil)
		}), ""},
		{"dns endpoint garbage", se(func(s *networking.ServiceEntry) {
			s.Resolution, s.Endpoints = networking.ServiceEntry_DNS, ep("not a host", nil)
		}), ReasonInvalidAddress},
		{"endpoint port undeclared", se(func(s *networking.ServiceEntry) { s.Endpoints = ep("10.0.0.1", map[string]uint32{"grpc": 9090}) }), ReasonUndeclaredPort},
		{"endpoint port range", se(func(s *networking.ServiceEntry) { s.Endpoints = ep("10.0.0.1", map[string]uint32{"http": 70000}) }), ReasonInvalidPort},
		{"endpoint label", se(func(s *networking.ServiceEntry) {
			s.Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.1", Labels: map[string]string{"a b": "c"}}}
		}), ReasonInvalidLabel},
		{"selector", se(func(s *networking.ServiceEntry) {
			s.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"mcp-bridge.io/service": "a"}}
		}), ""},
		{"selector and endpoints", se(func(s *networking.ServiceEntry) {
			s.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"mcp-bridge.io/service": "a"}}
			s.Endpoints = ep("10.0.0.1", nil)
		}), ReasonInvalidSpec},
		{"empty selector", se(func(s *networking.ServiceEntry) { s.WorkloadSelector = &networking.WorkloadSelector{} }), ReasonInvalidSelector},
		{"wildcard selector", se(func(s *networking.ServiceEntry) {
			s.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": "*"}}
		}), ReasonInvalidSelector},
		{"resolution none", se(func(s *networking.ServiceEntry) { s.Resolution = networking.ServiceEntry_NONE }), ReasonInvalidSpec},
		{"bad name", func() resourceSpec { r := se(func(*networking.ServiceEntry) {}); r.Name = "A_B"; return r }(), ReasonInvalidName},
		{"bad namespace", func() resourceSpec { r := se(func(*networking.ServiceEntry) {}); r.Namespace = "a.b"; return r }(), ReasonInvalidNamespace},
		{"bad metadata label", func() resourceSpec {
			r := se(func(*networking.ServiceEntry) {})
			r.Labels = map[string]string{"k": strings.Repeat("v", 64)}
			return r
		}(), ReasonInvalidLabel},
		{"workload entry", we(func(*networking.WorkloadEntry) {}), ""},
		{"workload entry host name", we(func(w *networking.WorkloadEntry) { w.Address = "vm-1.example" }), ""},
		{"workload entry no address", we(func(w *networking.WorkloadEntry) { w.Address = "" }), ReasonInvalidAddress},
		{"workload entry ipv6 zone", we(func(w *networking.WorkloadEntry) { w.Address = "fe80::1%eth0" }), ReasonInvalidAddress},
		{"workload entry port name", we(func(w *networking.WorkloadEntry) { w.Ports = map[string]uint32{"Bad_Name": 1} }), ReasonInvalidPortName},
		{"workload entry label key", we(func(w *networking.WorkloadEntry) { w.Labels = map[string]string{"UPPER.COM/k": "v"} }), ReasonInvalidLabel},
		{"workload entry label value", we(func(w *networking.WorkloadEntry) { w.Labels = map[string]string{"k": "-v"} }), ReasonInvalidLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := ValidateResource(tc.r.Resource, tc.r.spec)
			got := ""
			if len(ps) > 0 {
				got = ps[0].Reason
			}
			if got != tc.want {
				t.Errorf("first problem %q, want %q (all: %v)", got, tc.want, ps)
			}
		})
	}
}

// resourceSpec is a resource with the spec its body would hold.
type resourceSpec struct {
	*Resource
	spec proto.Message
}
