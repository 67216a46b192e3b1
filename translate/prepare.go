package translate

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/template"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// regConfig is a registry's options with parsed templates.
type regConfig struct {
	name      string
	namespace string
	templates map[registry.Kind]*template.Template
}

func newRegConfig(r RegistryOptions) (*regConfig, error) {
	c := &regConfig{name: r.Name, namespace: r.Namespace, templates: map[registry.Kind]*template.Template{}}
	for kind, text := range map[registry.Kind]string{
		registry.KindApplication:      r.Hosts.Application,
		registry.KindDubboInterface:   r.Hosts.DubboInterface,
		registry.KindDubboApplication: r.Hosts.DubboApplication,
	} {
		t, err := parseHostTemplate(text)
		if err != nil {
			return nil, err
		}
		c.templates[kind] = t
	}
	return c, nil
}

// prepared is everything about a service that depends on the service alone. It is computed once
// per *registry.Service and reused by every later render of that service.
type prepared struct {
	src string
	ns  string
	// fatal is set when the service cannot be emitted at all; the fields below are then unset.
	fatal *istio.Invalid

	host, hostKey string   // primary host; hostKey is its lower-case form, the identity of the host
	aliases       []string // hosts of the Dubbo interfaces it serves, sorted, without the primary
	aliasKeys     []string
	ports         []svcPort
	tcp           bool // a port is TCP: needs a VIP, and cannot share its ServiceEntry with other hosts
	resolution    networking.ServiceEntry_Resolution
	endpoints     []endpoint
	labels        map[string]string // ServiceEntry metadata labels
	dropped       []KeyCount        // endpoint label keys the label policy dropped, with the endpoints (a slice: smaller than a map)
	annotations   map[string]string
	weLabels      map[string]string // WorkloadEntry metadata labels
	selector      string            // value of LabelService for workloadEntry mode
	warnings      []istio.Warning
}

// endpoint is one instance as an Istio endpoint. Only its encoding is kept, not the
// *networking.WorkloadEntry it was encoded from: a ServiceEntry's body is built by appending the
// encodings, and in workloadEntry mode an encoding is the WorkloadEntry's body as it is. After a
// render, wire is shared with the bytes of the output (shareEndpointBytes), so it costs nothing
// of its own.
type endpoint struct {
	id   string
	name string // DNS label naming its WorkloadEntry within the service (workloadEntry mode only)
	wire []byte // the WorkloadEntry spec, encoded
}

// seName is the ServiceEntry name for a host: the host itself in lower case (hosts are at most
// 253 characters of DNS labels, so it is a valid name).
func seName(hostKey string) string { return hostKey }

func (t *Translator) prepare(s *registry.Service) *prepared {
	p := &prepared{src: sourceOf(s)}
	var n notes
	reg := t.regs[s.Registry]
	if reg == nil {
		p.fatal = &istio.Invalid{Collection: istio.CollectionServiceEntry, Source: p.src, Reason: ReasonUnknownRegistry,
			Detail: fmt.Sprintf("registry %q is not configured under translate registries", s.Registry)}
		return p
	}
	p.ns = reg.namespace
	host, err := t.host(reg, s.Kind, s.Name, s.Group, s.Namespace, s.Version, s.Registry)
	if err != nil {
		p.fatal = &istio.Invalid{Collection: istio.CollectionServiceEntry, Namespace: p.ns, Source: p.src, Reason: istio.ReasonInvalidHost, Detail: err.Error()}
		return p
	}
	p.host, p.hostKey = host, strings.ToLower(host)
	name := seName(p.hostKey)

	for _, a := range slices.Compact(slices.Sorted(slices.Values(s.Aliases))) {
		h, err := t.host(reg, registry.KindDubboInterface, a, "", s.Namespace, "", s.Registry)
		if err != nil {
			n.add(reasonAliasInvalid, fmt.Sprintf("alias %q: %v", a, err))
			continue
		}
		k := strings.ToLower(h)
		if k == p.hostKey || slices.Contains(p.aliasKeys, k) {
			continue
		}
		p.aliases = append(p.aliases, h)
		p.aliasKeys = append(p.aliasKeys, k)
	}

	p.ports = servicePorts(s, t.opts.ServicePorts, &n)
	for _, sp := range p.ports {
		if sp.proto == "TCP" {
			p.tcp = true
		}
	}
	p.selector = SanitizeLabelValue(name)
	p.resolution, p.endpoints = t.endpoints(s, p.ports, p.selector, &n, p)

	p.labels = sanitizeLabels(s.Labels, t.policy.service, &n, nil)
	if p.labels == nil {
		p.labels = map[string]string{}
	}
	p.labels[LabelRegistry] = SanitizeLabelValue(s.Registry)
	p.labels[LabelKind] = SanitizeLabelValue(string(s.Kind))
	p.annotations = map[string]string{AnnotationSource: p.src}
	p.weLabels = map[string]string{LabelRegistry: p.labels[LabelRegistry]}
	p.warnings = n.warnings(istio.Warning{Collection: istio.CollectionServiceEntry, Namespace: p.ns, Name: name, Source: p.src})
	return p
}

// host renders a host template over sanitised fields and checks the result.
func (t *Translator) host(reg *regConfig, kind registry.Kind, name, group, namespace, version, registryName string) (string, error) {
	tmpl := reg.templates[kind]
	if tmpl == nil {
		return "", fmt.Errorf("service kind %q has no host template (want %s, %s or %s)",
			kind, registry.KindApplication, registry.KindDubboInterface, registry.KindDubboApplication)
	}
	pc := t.opts.PreserveHostCase
	data := hostData{
		Name:      hostField(name, true, pc),
		Group:     hostField(group, true, pc),
		Namespace: hostField(namespace, true, pc),
		Version:   hostField(version, false, pc),
		Registry:  hostField(registryName, true, pc),
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("host template for %s: %w", kind, err)
	}
	h := strings.TrimSpace(b.String())
	if !pc {
		h = strings.ToLower(h)
	}
	if err := istio.CheckHost(h); err != nil {
		return "", err
	}
	return h, nil
}

// endpoints turns the instances that pass the filters into endpoints, sorted by instance ID.
// STATIC resolution needs IP addresses: when every address is a host name the service resolves by
// DNS instead; when names and IPs are mixed the names are dropped, with a note.
//
// In workloadEntry mode each endpoint already carries the selector label, so that its encoding
// serves as the WorkloadEntry's body as it is; when the namespace cap sends a service back to
// inline endpoints, they keep the label, which selects nothing there.
func (t *Translator) endpoints(s *registry.Service, ports []svcPort, selector string, n *notes, p *prepared) (networking.ServiceEntry_Resolution, []endpoint) {
	idx := make([]int, 0, len(s.Instances))
	for i := range s.Instances {
		in := &s.Instances[i]
		if (!in.Healthy && !t.opts.IncludeUnhealthy) || (!in.Enabled && !t.opts.IncludeDisabled) ||
			(in.Weight == 0 && !t.opts.IncludeZeroWeight) {
			continue
		}
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(s.Instances[a].ID, s.Instances[b].ID) })

	declared := make(map[string]bool, len(ports))
	for _, p := range ports {
		declared[p.key] = true
	}
	type candidate struct {
		in   *registry.Instance
		addr string
		ip   bool
	}
	cands := make([]candidate, 0, len(idx))
	ips := 0
	for k, i := range idx {
		in := &s.Instances[i]
		if k > 0 && s.Instances[idx[k-1]].ID == in.ID {
			n.add(reasonDuplicateInstance, fmt.Sprintf("instance id %q appears twice; the first is used", in.ID))
			continue
		}
		if ip, err := netip.ParseAddr(in.Address); err == nil && ip.Zone() == "" {
			cands = append(cands, candidate{in, ip.Unmap().String(), true})
			ips++
		} else if err == nil || istio.CheckFQDN(in.Address) != nil {
			n.add(reasonEndpointAddress, fmt.Sprintf("instance %q: address %q is neither an IP address nor a DNS name", in.ID, in.Address))
		} else {
			cands = append(cands, candidate{in, strings.TrimSuffix(in.Address, "."), false})
		}
	}
	resolution := networking.ServiceEntry_STATIC
	if ips == 0 && len(cands) > 0 {
		resolution = networking.ServiceEntry_DNS
	}

	out := make([]endpoint, 0, len(cands))
	var names map[string]bool // WorkloadEntry names given, workloadEntry mode only
	if t.opts.EndpointMode == EndpointModeWorkloadEntry {
		names = make(map[string]bool, len(cands))
	}
	var dropped map[string]int                    // label key -> endpoints it was dropped from, kept as p.dropped
	served := make(map[string]string, len(cands)) // address and ports -> the instance served there
	check := istio.WorkloadEntryContext{ServicePorts: make(map[string]bool, len(ports)), AllowNames: resolution == networking.ServiceEntry_DNS}
	for _, p := range ports {
		check.ServicePorts[p.name] = true
	}
	for _, c := range cands {
		in := c.in
		if resolution == networking.ServiceEntry_STATIC && !c.ip {
			n.add(reasonHostnameAddress, fmt.Sprintf("instance %q: host name %q dropped; the other instances have IP addresses, so the service resolves statically", in.ID, in.Address))
			continue
		}
		spec := &networking.WorkloadEntry{Address: c.addr, Weight: in.Weight}
		if len(ports) > 0 {
			spec.Ports = make(map[string]uint32, len(ports))
		}
		for _, p := range ports {
			if num, ok := in.Ports[p.key]; ok && num >= 1 && num <= 65535 {
				spec.Ports[p.name] = num
			} else if len(in.Ports) > 0 {
				// An instance that gives no ports at all is served on the service ports; one that
				// gives some but not this one will still get this port's traffic (Istio cannot
				// leave a port out per endpoint), on the service port number.
				n.add(reasonMissingPort, fmt.Sprintf("instance %q does not give port %q; Istio sends it that port's traffic on %d", in.ID, p.key, p.number))
			}
		}
		for k := range in.Ports {
			if !declared[k] {
				n.add(reasonUndeclaredPort, fmt.Sprintf("instance %q: port %q is not a port of the service; ignored", in.ID, k))
			}
		}
		if dropped == nil && len(in.Labels) > 0 {
			dropped = map[string]int{}
		}
		spec.Labels = sanitizeLabels(in.Labels, t.policy.endpoint, n, dropped)
		if spec.Labels == nil {
			spec.Labels = make(map[string]string, 2)
		}
		if t.tlsMode != "" {
			spec.Labels[LabelTLSMode] = t.tlsMode
		}
		if t.opts.EndpointMode == EndpointModeWorkloadEntry {
			spec.Labels[LabelService] = selector
		}
		if len(spec.Labels) == 0 {
			spec.Labels = nil
		}
		spec.Locality = locality(in, n)
		// Each endpoint is validated and encoded once, here; a bad one is dropped, not its service.
		if ps := istio.ValidateWorkloadEntry(spec, check); len(ps) > 0 {
			n.add(reasonEndpointInvalid, fmt.Sprintf("instance %q: %s", in.ID, ps[0].Detail))
			continue
		}
		// Two instances (different ids) at the same address and ports are one endpoint to Istio;
		// listing it twice would double its share of the traffic. The first by id is served.
		where := endpointWhere(spec)
		if first, dup := served[where]; dup {
			n.add(reasonDuplicateEndpoint, fmt.Sprintf("instances %q and %q are both at %s; served once, as %q", first, in.ID, where, first))
			continue
		}
		served[where] = in.ID
		wire, err := encodeWorkloadEntry(spec)
		if err != nil {
			n.add(reasonEndpointInvalid, fmt.Sprintf("instance %q: %v", in.ID, err))
			continue
		}
		// WorkloadEntry names are used in workloadEntry mode only: in inline mode none is held
		// (a string per instance, 20 bytes each at 100k instances).
		var name string
		if t.opts.EndpointMode == EndpointModeWorkloadEntry {
			name = dnsLabel(in.ID)
			if names[name] {
				n.add(reasonWorkloadEntryNames, fmt.Sprintf("instance ids %q and another map to one WorkloadEntry name; hashed", in.ID))
				name = fitLen(name, 54, in.ID) + "-" + shortHash(in.ID)
			}
			names[name] = true
		}
		out = append(out, endpoint{id: in.ID, name: name, wire: wire})
	}
	for k, c := range dropped {
		p.dropped = append(p.dropped, KeyCount{k, c})
	}
	return resolution, out
}

// endpointWhere renders an endpoint's address and ports ("10.0.0.1 http=8080"), the identity
// Istio gives it.
func endpointWhere(spec *networking.WorkloadEntry) string {
	if len(spec.Ports) == 1 { // the common case, without sorting
		for name, num := range spec.Ports {
			return spec.Address + " " + name + "=" + strconv.FormatUint(uint64(num), 10)
		}
	}
	b := []byte(spec.Address)
	for _, name := range slices.Sorted(maps.Keys(spec.Ports)) {
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, '=')
		b = strconv.AppendUint(b, uint64(spec.Ports[name]), 10)
	}
	return string(b)
}

// locality renders region/zone/subzone; a '/' inside a part would shift the parts, so it becomes '-'.
func locality(in *registry.Instance, n *notes) string {
	l := in.Locality
	if strings.Contains(l.Region+l.Zone+l.Subzone, "/") {
		n.add(reasonLocalityAdjusted, fmt.Sprintf("instance %q: '/' in locality %q replaced by '-'", in.ID, l.String()))
		l.Region = strings.ReplaceAll(l.Region, "/", "-")
		l.Zone = strings.ReplaceAll(l.Zone, "/", "-")
		l.Subzone = strings.ReplaceAll(l.Subzone, "/", "-")
	}
	// Envoy takes any text here, but protobuf strings must be UTF-8.
	return strings.ToValidUTF8(l.String(), "\uFFFD")
}
