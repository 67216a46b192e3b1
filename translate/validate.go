package translate

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

// problem is one broken rule. field is the path of the offending field in the spec
// ("ports[1].name"), for messages about operator-written specs; it is empty where the detail
// already names the field.
type problem struct {
	reason string
	detail string
	field  string
}

func problemf(reason, format string, a ...any) problem {
	return problem{reason: reason, detail: fmt.Sprintf(format, a...)}
}

// at sets the problem's field path.
func (p problem) at(field string) problem {
	p.field = field
	return p
}

// nested puts problems found in a sub-message (an endpoint) under its path.
func nested(prefix string, ps []problem) []problem {
	for i := range ps {
		ps[i].field = joinPath(prefix, ps[i].field)
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
type seRule func(se *networking.ServiceEntry) []problem

// weRule checks one aspect of a WorkloadEntry, standalone or as a ServiceEntry endpoint.
type weRule func(we *networking.WorkloadEntry, c weContext) []problem

// weContext says where a WorkloadEntry is checked: standalone (ports free, addresses may be
// names) or as an endpoint of a ServiceEntry (ports must be the entry's, STATIC needs IPs).
type weContext struct {
	servicePorts map[string]bool // nil when standalone
	allowNames   bool
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

// validateResource checks a resource's metadata and its spec in full. render checks its own
// resources with validateMeta and validateServiceEntryHead instead: each endpoint is checked once,
// when its service is prepared, against the ports and resolution of its ServiceEntry, which is
// stricter than the rules for a standalone WorkloadEntry; in workloadEntry mode that same checked
// endpoint is the WorkloadEntry's spec.
func validateResource(r *Resource, spec proto.Message) []problem {
	ps := validateMeta(r)
	switch spec := spec.(type) {
	case *networking.ServiceEntry:
		ps = append(ps, validateServiceEntry(spec)...)
	case *networking.WorkloadEntry:
		ps = append(ps, validateWorkloadEntry(spec, weContext{allowNames: true})...)
	default:
		ps = append(ps, problemf(ReasonInvalidSpec, "unexpected spec type %T", spec))
	}
	return ps
}

// validateMeta checks a resource's name, namespace and labels. Names and namespaces are checked
// here although Istiod does not check those of MCP resources, because Kubernetes would and tools
// that read Istiod's config assume it.
func validateMeta(r *Resource) []problem {
	var ps []problem
	if !isDNSSubdomain(r.Name) {
		ps = append(ps, problemf(ReasonInvalidName, "name %q is not a DNS-1123 subdomain", r.Name))
	}
	if !isDNSLabel(r.Namespace) {
		ps = append(ps, problemf(ReasonInvalidNamespace, "namespace %q is not a DNS-1123 label", r.Namespace))
	}
	return append(ps, checkLabels("metadata.labels", r.Labels)...)
}

func validateServiceEntry(se *networking.ServiceEntry) []problem {
	var ps []problem
	for _, rule := range serviceEntryRules {
		ps = append(ps, rule(se)...)
	}
	return ps
}

// validateServiceEntryHead is validateServiceEntry without the per-endpoint checks.
func validateServiceEntryHead(se *networking.ServiceEntry) []problem {
	head := &networking.ServiceEntry{Hosts: se.Hosts, Addresses: se.Addresses, Ports: se.Ports, Location: se.Location,
		Resolution: se.Resolution, WorkloadSelector: se.WorkloadSelector, ExportTo: se.ExportTo, SubjectAltNames: se.SubjectAltNames}
	ps := validateServiceEntry(head)
	if se.WorkloadSelector != nil && se.Endpoints != nil {
		ps = append(ps, problemf(ReasonInvalidSpec, "only one of WorkloadSelector or Endpoints is allowed in Service Entry"))
	}
	return ps
}

// endpointContext is how an endpoint of a ServiceEntry with these ports and resolution is checked.
func endpointContext(ports []*networking.ServicePort, resolution networking.ServiceEntry_Resolution) weContext {
	names := make(map[string]bool, len(ports))
	for _, p := range ports {
		if p != nil {
			names[p.Name] = true
		}
	}
	return weContext{servicePorts: names, allowNames: resolution == networking.ServiceEntry_DNS}
}

func validateWorkloadEntry(we *networking.WorkloadEntry, c weContext) []problem {
	var ps []problem
	for _, rule := range workloadEntryRules {
		ps = append(ps, rule(we, c)...)
	}
	return ps
}

func seHosts(se *networking.ServiceEntry) []problem {
	if len(se.Hosts) == 0 {
		return []problem{problemf(ReasonInvalidHost, "service entry must have at least one host").at("hosts")}
	}
	var ps []problem
	for i, h := range se.Hosts {
		if strings.Contains(h, "*") {
			ps = append(ps, problemf(ReasonInvalidHost, "host %q: the bridge never emits wildcards", h).at(indexPath("hosts", i)))
			continue
		}
		if err := checkHost(h); err != nil {
			ps = append(ps, problemf(ReasonInvalidHost, "%v", err).at(indexPath("hosts", i)))
		}
	}
	return ps
}

// seAddresses is Istio's ValidateIPSubnet, except that an address with an IPv6 zone is refused,
// and its rule that CIDR blocks need NONE or STATIC resolution.
func seAddresses(se *networking.ServiceEntry) []problem {
	var ps []problem
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

func sePorts(se *networking.ServiceEntry) []problem {
	var ps []problem
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
		if !isDNS1123Label(p.Name) {
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
func seSelector(se *networking.ServiceEntry) []problem {
	if se.WorkloadSelector == nil {
		return nil
	}
	var ps []problem
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
		p.reason = ReasonInvalidSelector
		ps = append(ps, p)
	}
	return ps
}

func seResolution(se *networking.ServiceEntry) []problem {
	switch se.Resolution {
	case networking.ServiceEntry_STATIC, networking.ServiceEntry_DNS:
	default:
		return []problem{problemf(ReasonInvalidSpec, "resolution %s is not one the bridge emits (STATIC or DNS)", se.Resolution).at("resolution")}
	}
	c := endpointContext(se.Ports, se.Resolution)
	var ps []problem
	for i, ep := range se.Endpoints {
		if ep == nil {
			ps = append(ps, problemf(ReasonInvalidSpec, "endpoint %d cannot be nil", i).at(indexPath("endpoints", i)))
			continue
		}
		ps = append(ps, nested(indexPath("endpoints", i), validateWorkloadEntry(ep, c))...)
	}
	return ps
}

// seMultipleHosts is Istio's rule that several hosts share a ServiceEntry only when every port is
// HTTP or TLS (there is no way to tell the hosts apart on plain TCP). Istio rejects the entry.
func seMultipleHosts(se *networking.ServiceEntry) []problem {
	if len(se.Hosts) < 2 || se.Resolution == networking.ServiceEntry_NONE {
		return nil
	}
	for _, p := range se.Ports {
		if p != nil && !httpOrTLS(p.Protocol) {
			return []problem{problemf(ReasonMultipleHostsTCP, "multiple hosts provided with non-HTTP, non-TLS port %q", p.Name).at("hosts")}
		}
	}
	return nil
}

// weAddress: an IP (STATIC endpoints), or an IP or FQDN (DNS endpoints, standalone entries).
func weAddress(we *networking.WorkloadEntry, c weContext) []problem {
	a := we.Address
	if a == "" {
		return []problem{problemf(ReasonInvalidAddress, "address is required").at("address")}
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return []problem{problemf(ReasonInvalidAddress, "endpoint address %q has an IPv6 zone", a).at("address")}
		}
		return nil
	}
	if !c.allowNames {
		return []problem{problemf(ReasonInvalidAddress, "endpoint address %q is not a valid IP address", a).at("address")}
	}
	if err := checkFQDN(a); err != nil {
		return []problem{problemf(ReasonInvalidAddress, "endpoint address %q is not a valid FQDN or an IP address", a).at("address")}
	}
	return nil
}

func wePorts(we *networking.WorkloadEntry, c weContext) []problem {
	var ps []problem
	for name, n := range we.Ports {
		at := keyPath("ports", name)
		if c.servicePorts != nil && !c.servicePorts[name] {
			ps = append(ps, problemf(ReasonUndeclaredPort, "endpoint port %q is not defined by the service entry", name).at(at))
		}
		if !isDNS1123Label(name) {
			ps = append(ps, problemf(ReasonInvalidPortName, "invalid port name: %q", name).at(at))
		}
		if n < 1 || n > 65535 {
			ps = append(ps, problemf(ReasonInvalidPort, "port %q number %d must be in the range 1..65535", name, n).at(at))
		}
	}
	return sortProblems(ps)
}

func weLabels(we *networking.WorkloadEntry, _ weContext) []problem {
	return checkLabels("labels", we.Labels)
}

func checkLabels(where string, labels map[string]string) []problem {
	var ps []problem
	for k, v := range labels {
		if !validLabelKey(k) {
			ps = append(ps, problemf(ReasonInvalidLabel, "%s: invalid key %q", where, k))
		}
		if !validLabelValue(v) {
			ps = append(ps, problemf(ReasonInvalidLabel, "%s: invalid value %q for key %q", where, v, k))
		}
	}
	return sortProblems(ps)
}

// sortProblems orders problems found while ranging over a map, so that details are stable.
func sortProblems(ps []problem) []problem {
	slices.SortFunc(ps, func(a, b problem) int { return strings.Compare(a.detail, b.detail) })
	return ps
}

// checkFQDN is Istio's agent.ValidateFQDN: at most 255 characters, DNS-1123 labels, the last not
// all-numeric; a trailing dot is allowed.
func checkFQDN(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("domain name %q too long (max 255)", s)
	}
	return checkHost(strings.TrimSuffix(s, "."))
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
