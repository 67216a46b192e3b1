package nacos

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Labels the adapter adds to what the registry gives.
const (
	// LabelCluster carries the Nacos cluster name of an instance.
	LabelCluster = "nacos.io/cluster"
	// defaultCluster is the cluster of an instance registered without one (Polaris sends "").
	defaultCluster = "DEFAULT"
)

// role is what a Nacos service is, by its name.
type role int

const (
	roleApp      role = iota // an application: Spring Cloud, Dubbo 3 application-level, plain
	roleProvider             // Dubbo 2 "providers:<interface>:<version>:<group>"
	roleConsumer             // Dubbo 2 "consumers:<interface>:<version>:<group>"
	roleIgnored              // other Dubbo 2 categories (routers:, configurators:): nothing to serve
)

// parseName tells Dubbo's interface-level names ("<category>:<interface>:<version>:<group>",
// empty parts kept; Dubbo before 2.7.3 may omit trailing ones) from application names.
func parseName(name string) (role, dubbo.ServiceKey) {
	category, rest, ok := strings.Cut(name, ":")
	if !ok {
		return roleApp, dubbo.ServiceKey{}
	}
	var r role
	switch category {
	case "providers":
		r = roleProvider
	case "consumers":
		r = roleConsumer
	case "routers", "configurators":
		r = roleIgnored
	default:
		return roleApp, dubbo.ServiceKey{}
	}
	parts := strings.SplitN(rest, ":", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	if parts[0] == "" {
		return roleApp, dubbo.ServiceKey{}
	}
	return r, dubbo.ServiceKey{Interface: parts[0], Version: parts[1], Group: parts[2]}
}

// weight maps a Nacos weight (a float, default 1.0, Nacos allows 0-10000) onto the model's
// integer weight: x100 rounded, so 1.0 is 100 (Dubbo's default weight: services from Nacos and
// ZooKeeper balance alike) and 0.5 is 50. Proportions are kept to 1/100; a positive weight never
// becomes 0, which would take the instance out of service.
func weight(w float64) uint32 {
	if !(w > 0) { // also NaN
		return 0
	}
	v := math.Round(w * 100)
	switch {
	case v < 1:
		return 1
	case v > 1e9:
		return 1e9
	}
	return uint32(v)
}

// noiseLabel reports metadata keys that are server bookkeeping rather than facts about the
// instance: Polaris's internal-nacos-* keys and Nacos's preserved.* settings (heart-beat
// timings, register source, id generator).
func noiseLabel(k string) bool {
	return strings.HasPrefix(k, "internal-nacos-") || strings.HasPrefix(k, "preserved.")
}

// converter turns Nacos instances into the model.
type converter struct {
	cfg       Config
	localites map[string]registry.Locality
}

func newConverter(cfg Config) *converter {
	c := &converter{cfg: cfg, localites: make(map[string]registry.Locality, len(cfg.Locality.Clusters))}
	for name, l := range cfg.Locality.Clusters {
		c.localites[name], _ = parseLocality(l) // validated
	}
	return c
}

func cluster(in *model.Instance) string {
	if in.ClusterName == "" {
		return defaultCluster
	}
	return in.ClusterName
}

func (c *converter) locality(in *model.Instance) registry.Locality {
	l := c.localites[cluster(in)]
	lc := c.cfg.Locality
	for _, f := range []struct {
		key string
		dst *string
	}{{lc.RegionKey, &l.Region}, {lc.ZoneKey, &l.Zone}, {lc.SubzoneKey, &l.Subzone}} {
		if f.key != "" {
			if v := in.Metadata[f.key]; v != "" {
				*f.dst = v
			}
		}
	}
	return l
}

// metadata returns the instance metadata without server bookkeeping and credentials.
func metadata(in *model.Instance) map[string]string {
	out := make(map[string]string, len(in.Metadata))
	for k, v := range in.Metadata {
		if noiseLabel(k) || dubbo.IsSensitive(k) {
			continue
		}
		out[k] = v
	}
	return out
}

func isDubbo3(ins []model.Instance) bool {
	for i := range ins {
		md := ins[i].Metadata
		if md["dubbo.endpoints"] != "" || md["dubbo.metadata.revision"] != "" || md["dubbo.metadata.storage-type"] != "" {
			return true
		}
	}
	return false
}

func instanceWhere(k subKey, in *model.Instance) string {
	return k.where() + "#" + net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10))
}

// checkAddress returns the reason and error for an instance without a usable address and port.
// The address must pass Istio's rule for endpoint addresses (registry.CheckAddress): an instance
// Istio would drop is rejected here, where the status page shows it.
func checkAddress(in *model.Instance) (string, error) {
	if in.Port == 0 || in.Port > 65535 {
		return dubbo.ReasonBadPort, fmt.Errorf("instance has address %q and port %d", truncate(in.Ip, 80), in.Port)
	}
	if err := registry.CheckAddress(in.Ip); err != nil {
		return dubbo.ReasonBadHost, fmt.Errorf("instance port %d: address: %w", in.Port, err)
	}
	return "", nil
}

// appService maps a plain application (Spring Cloud or any other Nacos client): one port of
// cfg.DefaultProtocol, https for instances with metadata secure=true, and with
// cfg.ManagementPort the Spring Cloud management port as port "management".
func (c *converter) appService(k subKey, ins []model.Instance, rej rejects) *registry.Service {
	svc := &registry.Service{Kind: registry.KindApplication, Namespace: k.ns, Group: k.group, Name: k.name}
	ports := map[string]registry.Protocol{}
	for i := range ins {
		in := &ins[i]
		if _, err := checkAddress(in); err != nil {
			rej.add(instanceWhere(k, in), "bad-address", err)
			continue
		}
		proto := c.cfg.DefaultProtocol
		if strings.EqualFold(in.Metadata["secure"], "true") {
			proto = registry.ProtocolHTTPS
		}
		name := string(proto)
		ports[name] = proto
		inst := registry.Instance{
			ID:       in.Ip + "#" + strconv.FormatUint(in.Port, 10) + "#" + cluster(in),
			Address:  in.Ip,
			Ports:    map[string]uint32{name: uint32(in.Port)},
			Labels:   metadata(in),
			Weight:   weight(in.Weight),
			Healthy:  in.Healthy,
			Enabled:  in.Enable,
			Locality: c.locality(in),
		}
		inst.Labels[LabelCluster] = cluster(in)
		if c.cfg.ManagementPort {
			if mp, err := strconv.ParseUint(in.Metadata["management.port"], 10, 16); err == nil && mp > 0 && mp != in.Port {
				ports["management"] = registry.ProtocolHTTP
				inst.Ports["management"] = uint32(mp)
			}
		}
		svc.Instances = append(svc.Instances, inst)
	}
	svc.Ports = sortedPorts(ports)
	svc.SortInstances()
	return svc
}

// nacosFacts overlays what Nacos itself says about an instance on a Dubbo member: Nacos health
// and enabled flags count as well as Dubbo's own, and a Nacos weight of 0 takes the instance out
// of service as it does for Dubbo consumers (the Nacos client skips it); otherwise the Dubbo
// weight parameter rules, as it does for Dubbo.
func (c *converter) nacosFacts(m *dubbo.Member, in *model.Instance) {
	m.Instance.Healthy = in.Healthy
	m.Instance.Enabled = m.Instance.Enabled && in.Enable
	if !(in.Weight > 0) {
		m.Instance.Weight = 0
	}
	m.Instance.Locality = c.locality(in)
	if m.Instance.Labels == nil {
		m.Instance.Labels = map[string]string{}
	}
	m.Instance.Labels[LabelCluster] = cluster(in)
}

// dubboParams returns the metadata of a Dubbo instance as URL parameters: without server
// bookkeeping, and without the keys Dubbo's Nacos registry adds to the URL parameters (category,
// protocol, path), so the same provider looks the same from Nacos and from ZooKeeper.
func dubboParams(in *model.Instance) (params map[string]string, protocol, path string) {
	params = make(map[string]string, len(in.Metadata))
	for k, v := range in.Metadata {
		switch {
		case noiseLabel(k):
		case k == "category":
		case k == "protocol":
			protocol = v
		case k == "path":
			path = v
		default:
			params[k] = v
		}
	}
	return params, protocol, path
}

// providers maps the instances of a "providers:" service to Dubbo providers. Interface, version
// and group missing from the metadata are taken from the service name.
func (c *converter) providers(k subKey, key dubbo.ServiceKey, ins []model.Instance, rej rejects) []dubbo.Provider {
	out := make([]dubbo.Provider, 0, len(ins))
	for i := range ins {
		in := &ins[i]
		if reason, err := checkAddress(in); err != nil {
			rej.add(instanceWhere(k, in), reason, err)
			continue
		}
		params, protocol, path := dubboParams(in)
		for pk, v := range map[string]string{"interface": key.Interface, "version": key.Version, "group": key.Group} {
			if _, ok := params[pk]; !ok && v != "" {
				params[pk] = v
			}
		}
		if path == "" {
			path = key.Interface
		}
		p, err := dubbo.NewProvider(dubbo.URLFromParams(protocol, in.Ip, uint32(in.Port), path, params))
		if err == nil && p.Key != key {
			err = fmt.Errorf("instance metadata names %s, the service name %s", p.Key, key)
			rej.add(instanceWhere(k, in), dubbo.ReasonInterfaceMismatch, err)
			continue
		}
		if err != nil {
			rej.add(instanceWhere(k, in), dubbo.Reason(err), err)
			continue
		}
		c.nacosFacts(&p.Member, in)
		out = append(out, p)
	}
	return out
}

// consumerURLs returns the consumer URLs of a "consumers:" service.
func consumerURLs(k subKey, key dubbo.ServiceKey, ins []model.Instance) []*dubbo.URL {
	out := make([]*dubbo.URL, 0, len(ins))
	for i := range ins {
		params, protocol, path := dubboParams(&ins[i])
		if _, ok := params["interface"]; !ok {
			params["interface"] = key.Interface
		}
		if protocol == "" {
			protocol = "consumer"
		}
		out = append(out, dubbo.URLFromParams(protocol, ins[i].Ip, 0, path, params))
	}
	return out
}

// appMembers maps the instances of a Dubbo 3 application-level service.
func (c *converter) appMembers(k subKey, ins []model.Instance, rej rejects) []dubbo.Member {
	out := make([]dubbo.Member, 0, len(ins))
	for i := range ins {
		in := &ins[i]
		if reason, err := checkAddress(in); err != nil {
			rej.add(instanceWhere(k, in), reason, err)
			continue
		}
		md := make(map[string]string, len(in.Metadata))
		for mk, v := range in.Metadata {
			if !noiseLabel(mk) {
				md[mk] = v
			}
		}
		id := net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10))
		m, err := dubbo.AppMember(k.name, id, in.Ip, uint32(in.Port), md)
		if err != nil {
			rej.add(instanceWhere(k, in), dubbo.Reason(err), err)
			continue
		}
		c.nacosFacts(&m, in)
		out = append(out, m)
	}
	return out
}

func sortedPorts(m map[string]registry.Protocol) []registry.Port {
	out := make([]registry.Port, 0, len(m))
	for name, p := range m {
		out = append(out, registry.Port{Name: name, Protocol: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
