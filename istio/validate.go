package istio

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Validation mirrors the rules of Istio's pkg/config/validation (ValidateServiceEntry and
// ValidateWorkloadEntry) for the fields the bridge emits, so that nothing we send is dropped by
// Istiod, which drops invalid resources silently and ACKs anyway. Each rule is a small function
// returning problems with a reason code; where we are stricter than Istio (label value length,
// lower-case names, IPv6 zones), the rule says so.

func problemf(reason, format string, a ...any) Problem {
	return Problem{Reason: reason, Detail: fmt.Sprintf(format, a...)}
}

// at sets the problem's field path.
func (p Problem) at(field string) Problem {
	p.Path = field
	return p
}

// nested puts problems found in a sub-message (an endpoint) under its path.
func nested(prefix string, ps []Problem) []Problem {
	for i := range ps {
		ps[i].Path = joinPath(prefix, ps[i].Path)
	}
	return ps
}

// joinPath appends a field name to a path ("http[0]" + "route" -> "http[0].route").
func joinPath(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// seRule checks one aspect of a ServiceEntry.
type seRule func(se *networking.ServiceEntry) []Problem

// weRule checks one aspect of a WorkloadEntry, standalone or as a ServiceEntry endpoint.
type weRule func(we *networking.WorkloadEntry, c WorkloadEntryContext) []Problem

// WorkloadEntryContext says where a WorkloadEntry is checked: standalone (ports free, addresses may be
// names) or as an endpoint of a ServiceEntry (ports must be the entry's, STATIC needs IPs).
type WorkloadEntryContext struct {
	ServicePorts map[string]bool // nil when standalone
	AllowNames   bool
}

var serviceEntryRules = []seRule{
	seHosts,
	seAddresses,
	sePorts,
	seSelector,
	seResolution,
	seMultipleHosts,
}

var workloadEntryRules = []weRule{
	weAddress,
	wePorts,
	weLabels,
}

// ValidateResource checks a translated resource (ServiceEntry or WorkloadEntry) and its spec in
// full, by the bridge's rules for what it emits; tests use it on every emitted resource.
// translate checks its own resources with ValidateMeta and ValidateServiceEntryHead instead: each endpoint is checked once,
// when its service is prepared, against the ports and resolution of its ServiceEntry, which is
// stricter than the rules for a standalone WorkloadEntry; in workloadEntry mode that same checked
// endpoint is the WorkloadEntry's spec.
func ValidateResource(r *Resource, spec proto.Message) []Problem {
	ps := ValidateMeta(r)
	switch spec := spec.(type) {
	case *networking.ServiceEntry:
		ps = append(ps, validateServiceEntry(spec)...)
	case *networking.WorkloadEntry:
		ps = append(ps, ValidateWorkloadEntry(spec, WorkloadEntryContext{AllowNames: true})...)
	default:
		ps = append(ps, problemf(ReasonInvalidSpec, "unexpected spec type %T", spec))
	}
	return ps
}

// ValidateMeta checks a resource's name, namespace and labels. Names and namespaces are checked
// here although Istiod does not check those of MCP resources, because Kubernetes would and tools
// that read Istiod's config assume it.
func ValidateMeta(r *Resource) []Problem {
	var ps []Problem
	if !IsDNSSubdomain(r.Name) {
		ps = append(ps, problemf(ReasonInvalidName, "name %q is not a DNS-1123 subdomain", r.Name))
	}
	if !IsDNSLabel(r.Namespace) {
		ps = append(ps, problemf(ReasonInvalidNamespace, "namespace %q is not a DNS-1123 label", r.Namespace))
	}
	return append(ps, checkLabels("metadata.labels", r.Labels)...)
}

func validateServiceEntry(se *networking.ServiceEntry) []Problem {
	var ps []Problem
	for _, rule := range serviceEntryRules {
		ps = append(ps, rule(se)...)
	}
	return ps
}

// ValidateServiceEntryHead is validateServiceEntry without the per-endpoint checks.
func ValidateServiceEntryHead(se *networking.ServiceEntry) []Problem {
	head := &networking.ServiceEntry{Hosts: se.Hosts, Addresses: se.Addresses, Ports: se.Ports, Location: se.Location,
		Resolution: se.Resolution, WorkloadSelector: se.WorkloadSelector, ExportTo: se.ExportTo, SubjectAltNames: se.SubjectAltNames}
	ps := validateServiceEntry(head)
	if se.WorkloadSelector != nil && se.Endpoints != nil {
		ps = append(ps, problemf(ReasonInvalidSpec, "only one of WorkloadSelector or Endpoints is allowed in Service Entry"))
	}
	return ps
}

// endpointContext is how an endpoint of a ServiceEntry with these ports and resolution is checked.
func endpointContext(ports []*networking.ServicePort, resolution networking.ServiceEntry_Resolution) WorkloadEntryContext {
	names := make(map[string]bool, len(ports))
	for _, p := range ports {
		if p != nil {
			names[p.Name] = true
		}
	}
	return WorkloadEntryContext{ServicePorts: names, AllowNames: resolution == networking.ServiceEntry_DNS}
}

func ValidateWorkloadEntry(we *networking.WorkloadEntry, c WorkloadEntryContext) []Problem {
	var ps []Problem
	for _, rule := range workloadEntryRules {
		ps = append(ps, rule(we, c)...)
	}
	return ps
}

func seHosts(se *networking.ServiceEntry) []Problem {
	if len(se.Hosts) == 0 {
		return []Problem{problemf(ReasonInvalidHost, "service entry must have at least one host").at("hosts")}
	}
	var ps []Problem
	for i, h := range se.Hosts {
		if strings.Contains(h, "*") {
			ps = append(ps, problemf(ReasonInvalidHost, "host %q: the bridge never emits wildcards", h).at(indexPath("hosts", i)))
			continue
		}
		if err := CheckHost(h); err != nil {
			ps = append(ps, problemf(ReasonInvalidHost, "%v", err).at(indexPath("hosts", i)))
		}
	}
	return ps
}

// seAddresses is Istio's ValidateIPSubnet, except that an address with an IPv6 zone is refused,
// and its rule that CIDR blocks need NONE or STATIC resolution.
func seAddresses(se *networking.ServiceEntry) []Problem {
	var ps []Problem
	for i, a := range se.Addresses {
		if strings.Contains(a, "/") {
			if _, err := netip.ParsePrefix(a); err != nil {
				ps = append(ps, problemf(ReasonInvalidAddress, "address %q is not a valid CIDR block", a).at(indexPath("addresses", i)))
			} else if se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
				ps = append(ps, problemf(ReasonInvalidAddress, "address %q: CIDR addresses are allowed only for NONE/STATIC resolution types", a).at(indexPath("addresses", i)))
			}
			continue
		}
		if ip, err := netip.ParseAddr(a); err != nil || ip.Zone() != "" {
			ps = append(ps, problemf(ReasonInvalidAddress, "address %q is not a valid IP address", a).at(indexPath("addresses", i)))
		}
	}
	return ps
}

func sePorts(se *networking.ServiceEntry) []Problem {
	var ps []Problem
	names := map[string]bool{}
	numbers := map[uint32]bool{}
	for i, p := range se.Ports {
		at := indexPath("ports", i)
		if p == nil {
			ps = append(ps, problemf(ReasonInvalidPort, "service entry port may not be null").at(at))
			continue
		}
		if names[p.Name] {
			ps = append(ps, problemf(ReasonDuplicatePort, "service entry port name %q already defined", p.Name).at(at+".name"))
		}
		names[p.Name] = true
		if numbers[p.Number] {
			ps = append(ps, problemf(ReasonDuplicatePort, "service entry port %d already defined", p.Number).at(at+".number"))
		}
		numbers[p.Number] = true
		if !IsDNS1123Label(p.Name) {
			ps = append(ps, problemf(ReasonInvalidPortName, "invalid port name: %q", p.Name).at(at+".name"))
		}
		if !knownProtocol(p.Protocol) {
			ps = append(ps, problemf(ReasonInvalidProtocol, "unsupported protocol: %q", p.Protocol).at(at+".protocol"))
		}
		if p.Number < 1 || p.Number > 65535 {
			ps = append(ps, problemf(ReasonInvalidPort, "port number %d must be in the range 1..65535", p.Number).at(at+".number"))
		}
		if p.TargetPort > 65535 {
			ps = append(ps, problemf(ReasonInvalidPort, "target port %d must be in the range 1..65535", p.TargetPort).at(at+".targetPort"))
		}
	}
	return ps
}

// seSelector is Istio's ValidateAlphaWorkloadSelector plus label syntax, and the rule that a
// ServiceEntry has a selector or endpoints, not both.
func seSelector(se *networking.ServiceEntry) []Problem {
	if se.WorkloadSelector == nil {
		return nil
	}
	var ps []Problem
	if se.Endpoints != nil {
		ps = append(ps, problemf(ReasonInvalidSpec, "only one of WorkloadSelector or Endpoints is allowed in Service Entry").at("endpoints"))
	}
	if len(se.WorkloadSelector.Labels) == 0 {
		// Istio only warns, then selects every workload of the namespace: never what we mean.
		ps = append(ps, problemf(ReasonInvalidSelector, "workload selector specified without labels").at("workloadSelector.labels"))
	}
	for _, k := range slices.Sorted(maps.Keys(se.WorkloadSelector.Labels)) {
		v := se.WorkloadSelector.Labels[k]
		if k == "" || strings.Contains(k, "*") || strings.Contains(v, "*") {
			ps = append(ps, problemf(ReasonInvalidSelector, "selector %q=%q: empty key or wildcard", k, v).at(keyPath("workloadSelector.labels", k)))
		}
	}
	for _, p := range checkLabels("workloadSelector", se.WorkloadSelector.Labels) {
		p.Reason = ReasonInvalidSelector
		ps = append(ps, p)
	}
	return ps
}

func seResolution(se *networking.ServiceEntry) []Problem {
	switch se.Resolution {
	case networking.ServiceEntry_STATIC, networking.ServiceEntry_DNS:
	default:
		return []Problem{problemf(ReasonInvalidSpec, "resolution %s is not one the bridge emits (STATIC or DNS)", se.Resolution).at("resolution")}
	}
	c := endpointContext(se.Ports, se.Resolution)
	var ps []Problem
	for i, ep := range se.Endpoints {
		if ep == nil {
			ps = append(ps, problemf(ReasonInvalidSpec, "endpoint %d cannot be nil", i).at(indexPath("endpoints", i)))
			continue
		}
		ps = append(ps, nested(indexPath("endpoints", i), ValidateWorkloadEntry(ep, c))...)
	}
	return ps
}

// seMultipleHosts is Istio's rule that several hosts share a ServiceEntry only when every port is
// HTTP or TLS (there is no way to tell the hosts apart on plain TCP). Istio rejects the entry.
func seMultipleHosts(se *networking.ServiceEntry) []Problem {
	if len(se.Hosts) < 2 || se.Resolution == networking.ServiceEntry_NONE {
		return nil
	}
	for _, p := range se.Ports {
		if p != nil && !httpOrTLS(p.Protocol) {
			return []Problem{problemf(ReasonMultipleHostsTCP, "multiple hosts provided with non-HTTP, non-TLS port %q", p.Name).at("hosts")}
		}
	}
	return nil
}

// weAddress: an IP (STATIC endpoints), or an IP or FQDN (DNS endpoints, standalone entries).
func weAddress(we *networking.WorkloadEntry, c WorkloadEntryContext) []Problem {
	a := we.Address
	if a == "" {
		return []Problem{problemf(ReasonInvalidAddress, "address is required").at("address")}
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return []Problem{problemf(ReasonInvalidAddress, "endpoint address %q has an IPv6 zone", a).at("address")}
		}
		return nil
	}
	if !c.AllowNames {
		return []Problem{problemf(ReasonInvalidAddress, "endpoint address %q is not a valid IP address", a).at("address")}
	}
	if err := CheckFQDN(a); err != nil {
		return []Problem{problemf(ReasonInvalidAddress, "endpoint address %q is not a valid FQDN or an IP address", a).at("address")}
	}
	return nil
}

func wePorts(we *networking.WorkloadEntry, c WorkloadEntryContext) []Problem {
	var ps []Problem
	for name, n := range we.Ports {
		at := keyPath("ports", name)
		if c.ServicePorts != nil && !c.ServicePorts[name] {
			ps = append(ps, problemf(ReasonUndeclaredPort, "endpoint port %q is not defined by the service entry", name).at(at))
		}
		if !IsDNS1123Label(name) {
			ps = append(ps, problemf(ReasonInvalidPortName, "invalid port name: %q", name).at(at))
		}
		if n < 1 || n > 65535 {
			ps = append(ps, problemf(ReasonInvalidPort, "port %q number %d must be in the range 1..65535", name, n).at(at))
		}
	}
	return sortProblems(ps)
}

func weLabels(we *networking.WorkloadEntry, _ WorkloadEntryContext) []Problem {
	return checkLabels("labels", we.Labels)
}

func checkLabels(where string, labels map[string]string) []Problem {
	var ps []Problem
	for k, v := range labels {
		if !ValidLabelKey(k) {
			ps = append(ps, problemf(ReasonInvalidLabel, "%s: invalid key %q", where, k))
		}
		if !ValidLabelValue(v) {
			ps = append(ps, problemf(ReasonInvalidLabel, "%s: invalid value %q for key %q", where, v, k))
		}
	}
	return sortProblems(ps)
}

// sortProblems orders problems found while ranging over a map, so that details are stable.
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int { return strings.Compare(a.Detail, b.Detail) })
	return ps
}

// CheckFQDN is Istio's agent.ValidateFQDN: at most 255 characters, DNS-1123 labels, the last not
// all-numeric; a trailing dot is allowed.
func CheckFQDN(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("domain name %q too long (max 255)", s)
	}
	return CheckHost(strings.TrimSuffix(s, "."))
}

func knownProtocol(p string) bool {
	switch strings.ToLower(p) {
	case "tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo", "redis", "mysql":
		return true
	}
	return false
}

// httpOrTLS is Istio's protocol.IsHTTP() || IsTLS().
func httpOrTLS(p string) bool {
	switch strings.ToLower(p) {
	case "http", "http2", "http_proxy", "grpc", "grpc-web", "https", "tls":
		return true
	}
	return false
}
