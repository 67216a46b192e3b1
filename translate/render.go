package translate

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// renderCtx is what a service's resources depend on besides the service itself: decisions that
// take other services into account. A service is re-rendered when its *registry.Service or its
// renderCtx changes, and only then.
type renderCtx struct {
	primary bool     // it owns its primary host
	winner  string   // otherwise: the source that does
	aliases []string // alias hosts it owns, sorted (keys)
	vips    []string // VIP of the primary host, then of each alias with a ServiceEntry of its own ("" = none)
	we      bool     // its instances are WorkloadEntries (workloadEntry mode, within the namespace cap)
	capped  bool     // workloadEntry mode, but over the namespace cap: inline instead
}

func (c *renderCtx) equal(o *renderCtx) bool {
	return c.primary == o.primary && c.winner == o.winner && c.we == o.we && c.capped == o.capped &&
		slices.Equal(c.aliases, o.aliases) && slices.Equal(c.vips, o.vips)
}

// rendered is a service's share of the output.
type rendered struct {
	ses, wes []*istio.Resource
	invalid  []istio.Invalid
	warnings []istio.Warning
	hosts    []ServiceHosts // none, or the hosts of its emitted ServiceEntries
}

// render builds a service's resources for a context. old is its previous output: a resource whose
// version did not change is reused as is, so that unchanged resources keep their pointers.
func (t *Translator) render(p *prepared, c *renderCtx, old *rendered, vipFull []string) rendered {
	var out rendered
	out.warnings = slices.Clone(p.warnings)
	if p.fatal != nil {
		out.invalid = []istio.Invalid{*p.fatal}
		return out
	}
	name := seName(p.hostKey)
	if !c.primary {
		out.invalid = []istio.Invalid{{Collection: istio.CollectionServiceEntry, Namespace: p.ns, Name: name, Source: p.src,
			Reason: ReasonDuplicateHost, Detail: fmt.Sprintf("host %q is already used by %s", p.host, c.winner)}}
		return out
	}
	warn := func(reason, detail string) {
		out.warnings = append(out.warnings, istio.Warning{Collection: istio.CollectionServiceEntry, Namespace: p.ns, Name: name,
			Source: p.src, Reason: reason, Detail: detail})
	}
	if len(c.aliases) < len(p.aliasKeys) {
		var lost []string
		for i, k := range p.aliasKeys {
			if !slices.Contains(c.aliases, k) {
				lost = append(lost, p.aliases[i])
			}
		}
		warn(reasonAliasShadowed, fmt.Sprintf("alias hosts %s are served by other services (a real Dubbo interface service, or an earlier application)", strings.Join(lost, ", ")))
	}
	for _, h := range vipFull {
		warn(reasonVIPExhausted, fmt.Sprintf("no free VIP in vipCIDR for host %q; Istio will match its TCP ports by port alone", h))
	}
	if c.capped {
		warn(reasonWorkloadEntryCap, fmt.Sprintf("namespace %q would exceed maxWorkloadEntriesPerNamespace=%d; its instances (%d) go inline in its ServiceEntry instead",
			p.ns, t.opts.MaxWorkloadEntriesPerNamespace, len(p.endpoints)))
	}

	reuse := map[string]*istio.Resource{}
	if old != nil {
		for _, r := range old.ses {
			reuse[r.Name] = r
		}
		for _, r := range old.wes {
			reuse[r.Name] = r
		}
	}
	// emit validates, encodes and versions a resource, or records why it is not emitted, and
	// returns the resource emitted (nil for none). specProblems are those of its spec: the
	// endpoints of a ServiceEntry were validated (and bad ones dropped) when the service was
	// prepared, against the same ports and resolution, and in workloadEntry mode the same checked
	// endpoint is the WorkloadEntry's spec, so only the rest of a ServiceEntry is checked here.
	emit := func(r *istio.Resource, specProblems []istio.Problem, encode func() ([]byte, error)) *istio.Resource {
		if ps := append(istio.ValidateMeta(r), specProblems...); len(ps) > 0 {
			details := make([]string, len(ps))
			for i, pr := range ps {
				details[i] = pr.Detail
			}
			out.invalid = append(out.invalid, istio.Invalid{Collection: r.Collection, Namespace: r.Namespace, Name: r.Name,
				Source: r.Source, Reason: ps[0].Reason, Detail: strings.Join(details, "; ")})
			return nil
		}
		body, err := encode()
		if err != nil {
			out.invalid = append(out.invalid, istio.Invalid{Collection: r.Collection, Namespace: r.Namespace, Name: r.Name,
				Source: r.Source, Reason: istio.ReasonInvalidSpec, Detail: err.Error()})
			return nil
		}
		r = seal(r, body, reuse[r.Name])
		if r.Collection == istio.CollectionServiceEntry {
			out.ses = append(out.ses, r)
		} else {
			out.wes = append(out.wes, r)
		}
		return r
	}
	var wires [][]byte
	if !c.we {
		wires = make([][]byte, len(p.endpoints))
		for i, ep := range p.endpoints {
			wires[i] = ep.wire
		}
	}
	var emitted []string
	emitSE := func(name string, hosts []string, vip string) *istio.Resource {
		r, se := t.serviceEntry(p, c, name, hosts, vip)
		r = emit(r, istio.ValidateServiceEntryHead(se), func() ([]byte, error) { return encodeServiceEntry(se, wires) })
		if r != nil {
			emitted = append(emitted, hosts...)
		}
		return r
	}

	// The ServiceEntry for the primary host and, where the ports allow several hosts, the aliases;
	// where they do not (a TCP port: Istio rejects several hosts), one ServiceEntry per alias.
	hosts := []string{p.host}
	vips := c.vips
	var aliasSEs []string
	if p.tcp {
		aliasSEs = c.aliases
	} else {
		for _, k := range c.aliases {
			hosts = append(hosts, p.aliases[slices.Index(p.aliasKeys, k)])
		}
	}
	mainInvalid := len(out.invalid)
	main := emitSE(name, hosts, vips[0])
	for i, k := range aliasSEs {
		emitSE(seName(k), []string{p.aliases[slices.Index(p.aliasKeys, k)]}, vips[i+1])
	}
	if main != nil {
		ports := make([]HostPort, len(p.ports))
		for i, sp := range p.ports {
			ports[i] = HostPort{Name: sp.name, Number: sp.number, Protocol: sp.proto}
		}
		out.hosts = []ServiceHosts{{Source: p.src, Namespace: p.ns, Hosts: emitted, Ports: ports}}
	}
	if !c.we {
		if main != nil {
			shareEndpointBytes(p.endpoints, main.Body.Value)
		}
		return out
	}
	if main == nil {
		// Without its ServiceEntry a WorkloadEntry serves nothing; the ServiceEntry's entry in
		// Invalid accounts for them.
		out.invalid[mainInvalid].Detail += fmt.Sprintf(" (its %d WorkloadEntries are not emitted either)", len(p.endpoints))
		return out
	}
	for i, ep := range p.endpoints {
		wire := ep.wire
		r := emit(&istio.Resource{Collection: istio.CollectionWorkloadEntry, Namespace: p.ns, Name: weName(name, ep.name),
			Labels: p.weLabels, Source: p.src + "#" + ep.id}, nil, func() ([]byte, error) { return wire, nil })
		if r != nil {
			// Keep the bytes the output holds: a WorkloadEntry reused from the previous output
			// holds an equal copy of its own, and the fresh encoding would be a second one.
			p.endpoints[i].wire = r.Body.Value
		}
	}
	return out
}

// shareEndpointBytes points each endpoint's encoding at its copy inside body, the encoding of a
// ServiceEntry built from them (encodeServiceEntry puts the endpoints last), so that a service's
// endpoints are held once, not once on their own and again in its ServiceEntry. body may be that
// of the previous output's resource when the content did not change; it is read-only, and every
// later use of the endpoints (encodeServiceEntry, a WorkloadEntry's body) only reads them. The
// bytes are checked equal before they are shared; on any mismatch nothing changes.
func shareEndpointBytes(eps []endpoint, body []byte) {
	if len(eps) == 0 {
		return
	}
	n := 0
	for _, ep := range eps {
		n += protowire.SizeTag(fieldSEEndpoints) + protowire.SizeBytes(len(ep.wire))
	}
	if n > len(body) {
		return
	}
	b := body[len(body)-n:]
	in := make([][]byte, len(eps))
	for i, ep := range eps {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 || num != fieldSEEndpoints || typ != protowire.BytesType {
			return
		}
		b = b[k:]
		v, k := protowire.ConsumeBytes(b)
		if k < 0 || !bytes.Equal(v, ep.wire) {
			return
		}
		in[i] = v[:len(v):len(v)]
		b = b[k:]
	}
	for i := range eps {
		eps[i].wire = in[i]
	}
}

// serviceEntry builds a ServiceEntry resource and its spec, without endpoints: those are appended
// already encoded (encodeServiceEntry).
func (t *Translator) serviceEntry(p *prepared, c *renderCtx, name string, hosts []string, vip string) (*istio.Resource, *networking.ServiceEntry) {
	se := &networking.ServiceEntry{
		Hosts:      hosts,
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: p.resolution,
	}
	if vip != "" {
		se.Addresses = []string{vip}
	}
	for _, sp := range p.ports {
		se.Ports = append(se.Ports, &networking.ServicePort{Number: sp.number, Protocol: sp.proto, Name: sp.name})
	}
	if c.we {
		se.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{LabelService: p.selector}}
	}
	return &istio.Resource{Collection: istio.CollectionServiceEntry, Namespace: p.ns, Name: name, Labels: p.labels,
		Annotations: p.annotations, Source: p.src}, se
}

// weName names a service's WorkloadEntry for one instance: "<ServiceEntry name>.<instance label>".
// The instance part is one DNS label and the ServiceEntry name is unique in the namespace, so
// names of different services cannot collide unless cut to fit 253 characters (then hashed).
func weName(seName, instance string) string {
	return fitSubdomain(seName+"."+instance, 253)
}

// seal sets the body and version. When prev (the resource of the same name in the service's
// previous output) has the same version, prev is returned instead: equal content keeps one
// identity, and consumers can compare pointers.
func seal(r *istio.Resource, body []byte, prev *istio.Resource) *istio.Resource {
	v := istio.Version(body, r.Labels, r.Annotations)
	if prev != nil && prev.Version == v && prev.Collection == r.Collection && prev.Source == r.Source {
		return prev
	}
	url := istio.SpecTypeURLServiceEntry
	if r.Collection == istio.CollectionWorkloadEntry {
		url = istio.SpecTypeURLWorkloadEntry
	}
	r.Body = &anypb.Any{TypeUrl: url, Value: body}
	r.Version = v
	return r
}
