package translate

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/template"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// Endpoint modes: where a service's instances go.
const (
	// EndpointModeInline puts instances in the ServiceEntry's endpoints. Istiod digests this far
	// better at scale (docs/scale.md#inline-endpoints), so it is the default.
	EndpointModeInline = "inline"
	// EndpointModeWorkloadEntry emits one WorkloadEntry per (service, instance) and gives the
	// ServiceEntry a workloadSelector that matches exactly its own WorkloadEntries.
	EndpointModeWorkloadEntry = "workloadEntry"
)

// Values of Options.WorkloadTLSMode.
const (
	TLSModeDisabled = "disabled" // label security.istio.io/tlsMode=disabled: plaintext to the instance
	TLSModeIstio    = "istio"    // label security.istio.io/tlsMode=istio: the instance has a sidecar
	TLSModeNone     = "none"     // no label at all
)

// Values of Options.VIPFor.
const (
	VIPForTCP = "tcp" // only services with a TCP port get a VIP (they need one to be told apart)
	VIPForAll = "all" // every service gets one, so Istio's DNS proxy can answer for every host
)

// Defaults. The VIP range sits in the reserved class E block like Istio's own allocator
// (240.240.0.0/16), but does not overlap it, and is large: VIPs are a hash of the host, so a
// bigger range means fewer collisions, and collisions are the only case in which the VIP of a
// host can depend on the order in which services arrived (see vip.go).
const (
	DefaultVIPCIDR = "240.0.0.0/9"
	// DefaultMaxWorkloadEntriesPerNamespace is where one namespace stops costing Istiod the same as
	// the same WorkloadEntries spread over ten: measured with the scale harness (docs/benchmarks.md),
	// a sidecar had every endpoint 0.73 s after Istiod started with 2,000 in one namespace (0.74 s
	// spread), 7.0 s with 5,000 (1.1 s spread) and 121 s with 10,000 (1.9 s spread).
	DefaultMaxWorkloadEntriesPerNamespace = 2000
)

// istioAutoAllocation lists the ranges Istio allocates ServiceEntry VIPs from itself; ours must not
// overlap them, or a ServiceEntry from Kubernetes could get the same VIP as one of ours.
var istioAutoAllocation = []netip.Prefix{
	netip.MustParsePrefix("240.240.0.0/16"),
	netip.MustParsePrefix("2001:2::/48"),
}

// DefaultServicePorts are the service port numbers used for these protocols whatever the instances
// listen on: Dubbo and Triple clients conventionally dial these.
func DefaultServicePorts() map[registry.Protocol]uint32 {
	return map[registry.Protocol]uint32{registry.ProtocolDubbo: 20880, registry.ProtocolTriple: 50051}
}

// DefaultDropLabels are label keys never emitted unless a rule references them, in either label
// mode: volatile ones that change on every
// restart (so every restart would rewrite every resource) and bulky ones nobody routes by.
func DefaultDropLabels() []string {
	return append(registry.VolatileLabelKeys(),
		"methods",                           // Dubbo: the interface's method list, long and useless for routing
		"dubbo.endpoints",                   // Dubbo 3: ports as JSON, already turned into ports
		"dubbo.metadata-service.url-params", // Dubbo 3: JSON for its metadata service
	)
}

// Options configure a Translator. Zero values mean the defaults given on each field.
type Options struct {
	// EndpointMode is "inline" (default) or "workloadEntry".
	EndpointMode string `yaml:"endpointMode" json:"endpointMode,omitempty"`
	// VIPCIDR is the range VIPs are allocated from. Default 240.0.0.0/9. It must not overlap
	// Istio's own auto-allocation ranges (240.240.0.0/16, 2001:2::/48).
	VIPCIDR string `yaml:"vipCIDR" json:"vipCIDR,omitempty"`
	// VIPFor says which services get a VIP: "all" (default: every service, because Istio's DNS
	// proxy can only resolve a host that has an address, and Spring Cloud clients resolve their
	// service names through DNS) or "tcp" (only services with a TCP port such as tcp-dubbo, which
	// Istio otherwise matches by port alone and which need one).
	VIPFor string `yaml:"vipFor" json:"vipFor,omitempty"`
	// WorkloadTLSMode is the security.istio.io/tlsMode label put on every endpoint and
	// WorkloadEntry: "disabled" (default: registry instances have no sidecar), "istio", or "none"
	// for no label.
	WorkloadTLSMode string `yaml:"workloadTLSMode" json:"workloadTLSMode,omitempty"`
	// MaxWorkloadEntriesPerNamespace caps the WorkloadEntries emitted into one namespace in
	// workloadEntry mode, because Istiod re-lists a namespace's WorkloadEntries on every
	// WorkloadEntry event. Services that would go over it fall back to inline endpoints, chosen
	// deterministically. Default 2000 (see DefaultMaxWorkloadEntriesPerNamespace); -1 means no cap.
	MaxWorkloadEntriesPerNamespace int `yaml:"maxWorkloadEntriesPerNamespace" json:"maxWorkloadEntriesPerNamespace,omitempty"`
	// ServicePorts fixes the service port number per protocol (dubbo, tri, grpc, http, https, tcp).
	// Defaults dubbo: 20880 and tri: 50051, merged under what is given here. A protocol set to 0, or
	// not listed, gets the port most of its instances use (ties: the lowest).
	ServicePorts map[registry.Protocol]uint32 `yaml:"servicePorts" json:"servicePorts,omitempty"`
	// IncludeUnhealthy also makes endpoints of instances the registry reports unhealthy.
	// Default false.
	IncludeUnhealthy bool `yaml:"includeUnhealthy" json:"includeUnhealthy,omitempty"`
	// IncludeDisabled also makes endpoints of disabled instances. Default false.
	IncludeDisabled bool `yaml:"includeDisabled" json:"includeDisabled,omitempty"`
	// IncludeZeroWeight also makes endpoints of instances with weight 0. Default false. Note that
	// Istio treats an endpoint weight of 0 as "unset" and gives it the default weight.
	IncludeZeroWeight bool `yaml:"includeZeroWeight" json:"includeZeroWeight,omitempty"`
	// Labels choose which registry labels endpoints carry: mode routing (default) or all, keep,
	// drop (see LabelOptions).
	Labels LabelOptions `yaml:"labels" json:"labels"`
	// DropLabels is the older name of Labels.Drop, still accepted (not with Labels.Drop).
	DropLabels []string `yaml:"dropLabels" json:"dropLabels,omitempty"`
	// PreserveHostCase keeps upper-case letters of registry names in hosts. Default false: hosts
	// are lower-cased because Istio lower-cases route domains and case-sensitive clients
	// (proxyless gRPC) then fail. Set it only to keep the hosts of Nacos's MCP server or Higress.
	PreserveHostCase bool `yaml:"preserveHostCase" json:"preserveHostCase,omitempty"`
	// Registries configure naming per registry, by registry name. A service from a registry not
	// listed here is not emitted.
	Registries []RegistryOptions `yaml:"registries" json:"registries,omitempty"`
}

// RegistryOptions configure how one registry's services are named.
type RegistryOptions struct {
	// Name is the registry's configured name (registry.Service.Registry). Required.
	Name string `yaml:"name" json:"name"`
	// Namespace is the Istio namespace this registry's resources go to. Default: the registry name,
	// which must then be a valid namespace name (DNS-1123 label).
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// Hosts are the host templates per kind of service. The caller fills in the registry type's
	// defaults (config does, from registry/registries: translate knows no registry types); empty
	// ones default to DefaultHostTemplates.
	Hosts HostTemplates `yaml:"hosts" json:"hosts,omitempty"`
}

// HostTemplates are Go text/templates producing a service's host, one per registry.Kind. They see
// .Name .Group .Namespace .Version .Registry, each already made DNS-friendly: lower-cased (unless
// preserveHostCase), characters other than letters, digits, '-' and '.' replaced by '-', non-ASCII
// labels Punycode-encoded, '-' trimmed at label edges; .Version also has '.' replaced by '-'.
// Functions: default (`{{.Group | default "default-group"}}`), lower, replace. The result must be a
// valid DNS name, or the service is reported invalid and not emitted.
type HostTemplates struct {
	// Application names registry.KindApplication services (Spring Cloud, Eureka apps, Consul services).
	Application string `yaml:"application" json:"application,omitempty"`
	// DubboInterface names registry.KindDubboInterface services and the aliases of Dubbo 3 apps.
	DubboInterface string `yaml:"dubboInterface" json:"dubboInterface,omitempty"`
	// DubboApplication names registry.KindDubboApplication services.
	DubboApplication string `yaml:"dubboApplication" json:"dubboApplication,omitempty"`
}

// dubboInterfaceTemplate is Aeraki's form, the same for every registry, so that one Dubbo interface
// registered in ZooKeeper and in Nacos gets one host.
const dubboInterfaceTemplate = `{{.Name}}{{with .Group}}-{{.}}{{end}}{{with .Version}}-{{.}}{{end}}`

// DefaultHostTemplates returns the host templates of a registry whose options set none and whose
// type gives none: "<name>.<registry name>" for applications, Aeraki's form for Dubbo interfaces.
func DefaultHostTemplates() HostTemplates {
	app := `{{.Name}}.{{.Registry}}`
	return HostTemplates{Application: app, DubboInterface: dubboInterfaceTemplate, DubboApplication: app}
}

// WithDefaults returns the options with every zero value replaced by its default.
func (o Options) WithDefaults() Options {
	if o.EndpointMode == "" {
		o.EndpointMode = EndpointModeInline
	}
	if o.VIPCIDR == "" {
		o.VIPCIDR = DefaultVIPCIDR
	}
	if o.VIPFor == "" {
		o.VIPFor = VIPForAll
	}
	if o.WorkloadTLSMode == "" {
		o.WorkloadTLSMode = TLSModeDisabled
	}
	if o.MaxWorkloadEntriesPerNamespace == 0 {
		o.MaxWorkloadEntriesPerNamespace = DefaultMaxWorkloadEntriesPerNamespace
	}
	ports := DefaultServicePorts()
	for p, n := range o.ServicePorts {
		ports[p] = n
	}
	o.ServicePorts = ports
	if o.Labels.Mode == "" {
		o.Labels.Mode = LabelModeRouting
	}
	if o.Labels.Drop == nil && o.DropLabels == nil {
		o.Labels.Drop = DefaultDropLabels()
	}
	regs := make([]RegistryOptions, len(o.Registries))
	for i, r := range o.Registries {
		if r.Namespace == "" {
			r.Namespace = r.Name
		}
		def := DefaultHostTemplates()
		if r.Hosts.Application == "" {
			r.Hosts.Application = def.Application
		}
		if r.Hosts.DubboInterface == "" {
			r.Hosts.DubboInterface = def.DubboInterface
		}
		if r.Hosts.DubboApplication == "" {
			r.Hosts.DubboApplication = def.DubboApplication
		}
		regs[i] = r
	}
	o.Registries = regs
	return o
}

// Validate checks the options (after WithDefaults), as New does. Errors name the YAML key, e.g.
// "registries[1].namespace: ...".
func (o Options) Validate() error { return o.WithDefaults().validate() }

// validate checks options that already have their defaults.
func (o Options) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch o.EndpointMode {
	case EndpointModeInline, EndpointModeWorkloadEntry:
	default:
		add("endpointMode: must be %q or %q, got %q", EndpointModeInline, EndpointModeWorkloadEntry, o.EndpointMode)
	}
	if _, err := parseVIPRange(o.VIPCIDR); err != nil {
		add("vipCIDR: %w", err)
	}
	switch o.VIPFor {
	case VIPForTCP, VIPForAll:
	default:
		add("vipFor: must be %q or %q, got %q", VIPForTCP, VIPForAll, o.VIPFor)
	}
	switch o.WorkloadTLSMode {
	case TLSModeDisabled, TLSModeIstio, TLSModeNone:
	default:
		add("workloadTLSMode: must be %q, %q or %q, got %q", TLSModeDisabled, TLSModeIstio, TLSModeNone, o.WorkloadTLSMode)
	}
	if o.MaxWorkloadEntriesPerNamespace < -1 {
		add("maxWorkloadEntriesPerNamespace: must be positive, or -1 for no cap, got %d", o.MaxWorkloadEntriesPerNamespace)
	}
	for _, p := range slices.Sorted(maps.Keys(o.ServicePorts)) {
		if _, ok := protocols[p]; !ok {
			add("servicePorts: unknown protocol %q (known: dubbo, tri, grpc, http, https, tcp)", p)
		}
		if n := o.ServicePorts[p]; n > 65535 {
			add("servicePorts.%s: port %d is out of range 1-65535", p, n)
		}
	}
	o.validateLabels(add)
	seen := map[string]int{}
	for i, r := range o.Registries {
		at := fmt.Sprintf("registries[%d]", i)
		if r.Name == "" {
			add("%s.name: must not be empty", at)
		} else if j, dup := seen[r.Name]; dup {
			add("%s.name: %q is already used by registries[%d]", at, r.Name, j)
		} else {
			seen[r.Name] = i
		}
		if !istio.IsDNSLabel(r.Namespace) {
			add("%s.namespace: %q is not a valid namespace name (lower-case DNS-1123 label: a-z, 0-9, '-', at most 63 characters); set namespace explicitly when the registry name is not one", at, r.Namespace)
		}
		if err := r.Hosts.Validate(); err != nil {
			add("%s.hosts.%w", at, err)
		}
	}
	return errors.Join(errs...)
}

// Validate checks the templates that are set (an empty one means the registry type's default);
// an error names the template's key first ("application: ...").
func (h HostTemplates) Validate() error {
	for _, t := range []struct{ key, text string }{
		{"application", h.Application},
		{"dubboInterface", h.DubboInterface},
		{"dubboApplication", h.DubboApplication},
	} {
		if t.text == "" {
			continue
		}
		if _, err := parseHostTemplate(t.text); err != nil {
			return fmt.Errorf("%s: %w", t.key, err)
		}
	}
	return nil
}

// parseHostTemplate parses a host template and runs it once over sample data, so that a template
// that refers to a missing field fails at start-up rather than on every service.
func parseHostTemplate(text string) (*template.Template, error) {
	t, err := template.New("host").Option("missingkey=error").Funcs(hostFuncs).Parse(text)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := t.Execute(&b, hostData{Name: "name", Group: "group", Namespace: "namespace", Version: "1-0", Registry: "registry"}); err != nil {
		return nil, err
	}
	return t, nil
}

var hostFuncs = template.FuncMap{
	"default": func(def, v string) string {
		if v == "" {
			return def
		}
		return v
	},
	"lower":   strings.ToLower,
	"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
}
