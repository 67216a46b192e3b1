package consul

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Reason codes of rejected instances besides registry/dubbo's.
const reasonBadAddress = "bad-address"

// rejection is an instance the adapter could not use.
type rejection struct {
	reason string
	err    error
}

// converter turns the health entries of one Consul service into model services.
type converter struct {
	cfg Config
}

// instance is one health entry with what every kind of service needs from it.
type instance struct {
	where   string // dc/service/node/id, for rejections
	id      string
	address string
	port    uint32
	params  map[string]string // tags k=v and Meta, Dubbo's meta keys in their dotted form
	healthy bool
	enabled bool
	weight  uint32
	zone    string
}

// convert maps the entries of Consul service name in datacenter dc. A Consul service becomes
// one application service (Spring Cloud and anything else), one Dubbo 3 application service, or
// one Dubbo 2 interface service per group and version. Instances that cannot be used are
// returned as rejections keyed by where they are; the rest of the service goes on.
func (c *converter) convert(dc, name string, entries []*api.ServiceEntry) ([]*registry.Service, map[string]rejection) {
	rej := map[string]rejection{}
	ins := make([]instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil || e.Node == nil || !hasTags(e.Service.Tags, c.cfg.Tags) {
			continue
		}
		ins = append(ins, c.instance(dc, name, e))
	}
	switch {
	case slices.ContainsFunc(ins, isDubbo3):
		return c.dubbo3(dc, name, ins, rej), rej
	case slices.ContainsFunc(ins, isDubbo2):
		return c.dubbo2(dc, name, ins, rej), rej
	}
	return c.app(dc, name, ins, rej), rej
}

func (c *converter) instance(dc, name string, e *api.ServiceEntry) instance {
	s := e.Service
	in := instance{
		where:   dc + "/" + name + "/" + e.Node.Node + "/" + s.ID,
		id:      e.Node.Node + "/" + s.ID,
		address: s.Address,
		port:    uint32(s.Port),
		params:  params(s.Tags, s.Meta),
	}
	if in.address == "" {
		// Registered without an address: Consul's own rule is the node's address.
		in.address = e.Node.Address
	}
	status, maint := aggregate(e.Checks)
	in.healthy = slices.Contains(c.cfg.HealthStatus, status)
	in.enabled = !maint
	w := s.Weights.Passing
	if status == api.HealthWarning {
		w = s.Weights.Warning
	}
	in.weight = weight(w)
	in.zone = in.params["zone"]
	return in
}

// aggregate is Consul's rule for an instance's checks (critical > warning > passing, no checks
// passing), with maintenance reported apart: maintenance disables an instance rather than
// making it unhealthy, as it is an operator's decision.
func aggregate(checks api.HealthChecks) (status string, maintenance bool) {
	status = api.HealthPassing
	for _, ch := range checks {
		if ch.CheckID == api.NodeMaint || strings.HasPrefix(ch.CheckID, api.ServiceMaintPrefix) {
			maintenance = true
			continue
		}
		switch ch.Status {
		case api.HealthCritical:
			status = api.HealthCritical
		case api.HealthWarning:
			if status == api.HealthPassing {
				status = api.HealthWarning
			}
		case api.HealthPassing:
		default: // an unknown state is no evidence of health
			status = api.HealthCritical
		}
	}
	return status, maintenance
}

// weight maps a Consul weight (an integer, default 1) onto the model: x100, so Consul's default
// weighs like Dubbo's default 100 and Nacos's 1.0 when one service is in several registries.
func weight(w int) uint32 {
	switch {
	case w <= 0:
		return 0
	case w > 10_000_000:
		return 1e9
	}
	return uint32(w) * 100
}

// params gathers an instance's key=value tags and its Meta (Meta wins). Consul allows only
// letters, digits, '_' and '-' in Meta keys, so Dubbo's dotted keys arrive as "dubbo_endpoints";
// keys starting "dubbo_" get their dots back so registry/dubbo reads them as from ZooKeeper.
func params(tags []string, meta map[string]string) map[string]string {
	out := make(map[string]string, len(tags)+len(meta))
	for _, t := range tags {
		if k, v, ok := strings.Cut(t, "="); ok && k != "" {
			out[k] = v
		}
	}
	for k, v := range meta {
		if strings.HasPrefix(k, "dubbo_") {
			k = strings.ReplaceAll(k, "_", ".")
		}
		out[k] = v
	}
	return out
}

func hasTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// isDubbo3 tells a Dubbo 3 application-level instance by Dubbo's instance metadata.
func isDubbo3(in instance) bool {
	return in.params["dubbo.endpoints"] != "" || in.params["dubbo.metadata.revision"] != "" || in.params["dubbo.metadata.storage-type"] != ""
}

// isDubbo2 tells a Dubbo 2.7 provider: its full URL in Meta "url" (what Dubbo's Consul registry
// writes), or its URL parameters as tags with an interface.
func isDubbo2(in instance) bool {
	return strings.Contains(in.params["url"], "://") || in.params["interface"] != ""
}

// labels are an application instance's tags and Meta without credentials and volatile keys;
// translate sanitises the rest for Istio (and warns where it rewrites).
func labels(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		if dubbo.IsSensitive(k) || dubbo.IsVolatile(k) {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (c *converter) locality(dc string, in instance) registry.Locality {
	return registry.Locality{Region: dc, Zone: in.zone}
}

func checkAddress(in instance) error {
	if in.port == 0 || in.port > 65535 {
		return fmt.Errorf("instance has address %q and port %d", truncate(in.address, 80), in.port)
	}
	if err := registry.CheckAddress(in.address); err != nil {
		return fmt.Errorf("instance port %d: address: %w", in.port, err)
	}
	return nil
}

// app maps a plain service (Spring Cloud Consul or any other client): one port of
// cfg.DefaultProtocol, https for instances with Meta secure=true.
func (c *converter) app(dc, name string, ins []instance, rej map[string]rejection) []*registry.Service {
	svc := &registry.Service{Kind: registry.KindApplication, Namespace: dc, Name: name}
	ports := map[string]registry.Protocol{}
	for _, in := range ins {
		if err := checkAddress(in); err != nil {
			rej[in.where] = rejection{reasonBadAddress, err}
			continue
		}
		proto := c.cfg.DefaultProtocol
		if strings.EqualFold(in.params["secure"], "true") {
			proto = registry.ProtocolHTTPS
		}
		ports[string(proto)] = proto
		svc.Instances = append(svc.Instances, registry.Instance{
			ID:       in.id,
			Address:  in.address,
			Ports:    map[string]uint32{string(proto): in.port},
			Labels:   labels(in.params),
			Weight:   in.weight,
			Healthy:  in.healthy,
			Enabled:  in.enabled,
			Locality: c.locality(dc, in),
		})
	}
	for _, n := range slices.Sorted(maps.Keys(ports)) {
		svc.Ports = append(svc.Ports, registry.Port{Name: n, Protocol: ports[n]})
	}
	svc.SortInstances()
	return []*registry.Service{svc}
}

// consulFacts overlays what Consul says about an instance on a Dubbo member: Consul's health
// decides, maintenance disables, and a weight Consul sets to 0 takes it out of service;
// otherwise Dubbo's weight parameter rules, as it does for Dubbo itself.
func (c *converter) consulFacts(dc string, m *dubbo.Member, in instance) {
	m.Instance.Healthy = in.healthy
	m.Instance.Enabled = m.Instance.Enabled && in.enabled
	if in.weight == 0 {
		m.Instance.Weight = 0
	}
	m.Instance.Locality = c.locality(dc, in)
}

// dubbo2 maps Dubbo 2.7 providers registered as Consul service <interface> into one
// dubbo-interface service per group and version, through registry/dubbo, so that they get the
// hosts the same providers get from ZooKeeper and Nacos.
func (c *converter) dubbo2(dc, name string, ins []instance, rej map[string]rejection) []*registry.Service {
	byKey := map[dubbo.ServiceKey][]dubbo.Provider{}
	for _, in := range ins {
		if err := checkAddress(in); err != nil {
			rej[in.where] = rejection{dubbo.ReasonBadHost, err}
			continue
		}
		var u *dubbo.URL
		if s := in.params["url"]; strings.Contains(s, "://") {
			var err error
			if u, err = dubbo.ParseURL(s); err != nil {
				rej[in.where] = rejection{dubbo.Reason(err), fmt.Errorf("meta url: %w", err)}
				continue
			}
		} else {
			p := maps.Clone(in.params)
			proto := p["protocol"]
			if proto == "" {
				proto = "dubbo"
			}
			delete(p, "protocol")
			u = dubbo.URLFromParams(proto, in.address, in.port, p["interface"], p)
		}
		p, err := dubbo.NewProvider(u)
		if err == nil && p.Key.Interface != name {
			rej[in.where] = rejection{dubbo.ReasonInterfaceMismatch, fmt.Errorf("provider URL names interface %s, the Consul service is %s", p.Key.Interface, name)}
			continue
		}
		if err != nil {
			rej[in.where] = rejection{dubbo.Reason(err), err}
			continue
		}
		c.consulFacts(dc, &p.Member, in)
		byKey[p.Key] = append(byKey[p.Key], p)
	}
	keys := slices.Collect(maps.Keys(byKey))
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	out := make([]*registry.Service, 0, len(keys))
	for _, k := range keys {
		s := dubbo.InterfaceService(k, byKey[k])
		s.Namespace = dc
		out = append(out, s)
	}
	if len(out) == 0 {
		// Every provider was rejected: the service is still registered, with no instances.
		out = append(out, &registry.Service{Kind: registry.KindDubboInterface, Namespace: dc, Name: name})
	}
	return out
}

// dubbo3 maps a Dubbo 3 application registered as Consul service <application>.
func (c *converter) dubbo3(dc, name string, ins []instance, rej map[string]rejection) []*registry.Service {
	members := make([]dubbo.Member, 0, len(ins))
	for _, in := range ins {
		m, err := dubbo.AppMember(name, in.id, in.address, in.port, in.params)
		if err != nil {
			rej[in.where] = rejection{dubbo.Reason(err), err}
			continue
		}
		c.consulFacts(dc, &m, in)
		members = append(members, m)
	}
	s := dubbo.ApplicationService(name, members)
	s.Namespace = dc
	return []*registry.Service{s}
}
