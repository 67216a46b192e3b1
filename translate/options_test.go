package translate

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestOptionsValidation(t *testing.T) {
	reg := []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}
	for _, tc := range []struct {
		name string
		o    Options
		want string // substring of the error; "" means valid
	}{
		{"defaults", Options{}, ""},
		{"full", Options{EndpointMode: EndpointModeWorkloadEntry, VIPCIDR: "10.250.0.0/16", VIPFor: VIPForAll, WorkloadTLSMode: TLSModeIstio,
			MaxWorkloadEntriesPerNamespace: -1, ServicePorts: map[registry.Protocol]uint32{registry.ProtocolHTTP: 8080}, Registries: reg}, ""},
		{"endpoint mode", Options{EndpointMode: "inlined"}, `endpointMode: must be "inline" or "workloadEntry", got "inlined"`},
		{"cidr syntax", Options{VIPCIDR: "240.0.0.0"}, `vipCIDR: "240.0.0.0" is not a CIDR`},
		{"cidr overlaps istio", Options{VIPCIDR: "240.240.0.0/12"}, "vipCIDR: 240.240.0.0/12 overlaps 240.240.0.0/16"},
		{"cidr overlaps istio v6", Options{VIPCIDR: "2001:2::/32"}, "overlaps 2001:2::/48"},
		{"cidr too small", Options{VIPCIDR: "240.1.0.0/31"}, "vipCIDR: 240.1.0.0/31 is too small"},
		{"vipFor", Options{VIPFor: "http"}, `vipFor: must be "tcp" or "all"`},
		{"tls mode", Options{WorkloadTLSMode: "strict"}, "workloadTLSMode: must be"},
		{"cap", Options{MaxWorkloadEntriesPerNamespace: -2}, "maxWorkloadEntriesPerNamespace: must be positive"},
		{"port protocol", Options{ServicePorts: map[registry.Protocol]uint32{"thrift": 9090}}, `servicePorts: unknown protocol "thrift"`},
		{"port range", Options{ServicePorts: map[registry.Protocol]uint32{registry.ProtocolHTTP: 70000}}, "servicePorts.http: port 70000 is out of range"},
		{"drop labels", Options{DropLabels: []string{"pid", "*"}}, "dropLabels[1]: must not be empty"},
		{"labels mode", Options{Labels: LabelOptions{Mode: "lean"}}, `labels.mode: must be "routing" or "all", got "lean"`},
		{"labels keep", Options{Labels: LabelOptions{Keep: []string{"*"}}}, "labels.keep[0]: must not be empty"},
		{"labels drop", Options{Labels: LabelOptions{Drop: []string{"a", ""}}}, "labels.drop[1]: must not be empty"},
		{"drop and its alias", Options{DropLabels: []string{"pid"}, Labels: LabelOptions{Drop: []string{"pid"}}}, "dropLabels: is an alias of labels.drop; set one of them, not both"},
		{"labels all", Options{Labels: LabelOptions{Mode: LabelModeAll, Keep: []string{"x"}, Drop: []string{"y*"}}}, ""},
		{"registry name", Options{Registries: []RegistryOptions{{Hosts: fileHosts, Namespace: "x"}}}, "registries[0].name: must not be empty"},
		{"registry dup", Options{Registries: []RegistryOptions{{Name: "a", Hosts: fileHosts}, {Name: "a", Hosts: fileHosts}}}, `registries[1].name: "a" is already used by registries[0]`},
		{"namespace from name", Options{Registries: []RegistryOptions{{Name: "Nacos_Prod", Hosts: nacosHosts}}}, `registries[0].namespace: "Nacos_Prod" is not a valid namespace name`},
		{"namespace explicit", Options{Registries: []RegistryOptions{{Name: "Nacos_Prod", Hosts: nacosHosts, Namespace: "nacos-prod"}}}, ""},
		{"template syntax", Options{Registries: []RegistryOptions{{Name: "a", Hosts: HostTemplates{Application: "{{.Name"}}}}, "registries[0].hosts.application:"},
		{"template field", Options{Registries: []RegistryOptions{{Name: "a", Hosts: HostTemplates{DubboInterface: "{{.Service}}"}}}}, "registries[0].hosts.dubboInterface:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if verr := tc.o.Validate(); (verr == nil) != (err == nil) {
				t.Errorf("Validate() = %v but New() = %v", verr, err)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	o := Options{ServicePorts: map[registry.Protocol]uint32{registry.ProtocolHTTP: 8080, registry.ProtocolDubbo: 0},
		Registries: []RegistryOptions{{Name: "nacos", Hosts: HostTemplates{Application: "{{.Name}}.x"}}}}.WithDefaults()
	if o.EndpointMode != EndpointModeInline || o.VIPCIDR != DefaultVIPCIDR || o.VIPFor != VIPForAll || o.WorkloadTLSMode != TLSModeDisabled ||
		o.MaxWorkloadEntriesPerNamespace != DefaultMaxWorkloadEntriesPerNamespace || len(o.Labels.Drop) != len(DefaultDropLabels()) || o.DropLabels != nil || o.Labels.Mode != LabelModeRouting {
		t.Errorf("defaults not applied: %+v", o)
	}
	// Given entries override defaults (dubbo: 0 means "from the instances"); others are added.
	want := map[registry.Protocol]uint32{registry.ProtocolHTTP: 8080, registry.ProtocolDubbo: 0, registry.ProtocolTriple: 50051}
	if len(o.ServicePorts) != len(want) {
		t.Errorf("servicePorts %v, want %v", o.ServicePorts, want)
	}
	for p, n := range want {
		if o.ServicePorts[p] != n {
			t.Errorf("servicePorts[%s] = %d, want %d", p, o.ServicePorts[p], n)
		}
	}
	r := o.Registries[0]
	if r.Namespace != "nacos" || r.Hosts.Application != "{{.Name}}.x" || r.Hosts.DubboInterface != DefaultHostTemplates().DubboInterface {
		t.Errorf("registry defaults: %+v", r)
	}
	// An explicit empty drop list is kept: drop nothing.
	if o := (Options{DropLabels: []string{}}).WithDefaults(); len(o.DropLabels) != 0 || o.Labels.Drop != nil {
		t.Errorf("explicit empty dropLabels replaced by %v (labels.drop %v)", o.DropLabels, o.Labels.Drop)
	}
	if o := (Options{Labels: LabelOptions{Drop: []string{}}}).WithDefaults(); o.Labels.Drop == nil || len(o.Labels.Drop) != 0 {
		t.Errorf("explicit empty labels.drop replaced by %v", o.Labels.Drop)
	}
}

// TestOptionsYAML: the options decode from the configuration file's YAML with camelCase keys.
func TestOptionsYAML(t *testing.T) {
	const doc = `
endpointMode: workloadEntry
vipCIDR: 10.250.0.0/16
vipFor: tcp
workloadTLSMode: none
maxWorkloadEntriesPerNamespace: 500
servicePorts: {http: 8080, dubbo: 0}
includeUnhealthy: true
dropLabels: [timestamp, "preserved.*"]
preserveHostCase: true
registries:
- name: nacos-prod
  namespace: nacos
  hosts:
    application: "{{.Name}}.{{.Group}}.svc"
`
	var o Options
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o.EndpointMode != EndpointModeWorkloadEntry || o.VIPCIDR != "10.250.0.0/16" || o.VIPFor != VIPForTCP || o.WorkloadTLSMode != TLSModeNone ||
		o.MaxWorkloadEntriesPerNamespace != 500 || o.ServicePorts[registry.ProtocolHTTP] != 8080 || !o.IncludeUnhealthy ||
		len(o.DropLabels) != 2 || !o.PreserveHostCase || o.Registries[0].Hosts.Application != "{{.Name}}.{{.Group}}.svc" || o.Registries[0].Namespace != "nacos" {
		t.Errorf("decoded %+v", o)
	}
	if _, err := New(o); err != nil {
		t.Error(err)
	}
}
