package eureka

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Port names of Eureka instances.
const (
	portHTTP       = "http"
	portHTTPS      = "https"
	portManagement = "management"
)

// Reject reasons of this adapter (dubbo's for Dubbo 3 instances).
const (
	ReasonBadAddress = "bad-address"
	ReasonNoPort     = "no-port"
	ReasonNoVIP      = "no-vip-address"
)

// rejection is an instance the converter could not use.
type rejection struct {
	reason string
	err    error
}

// converter turns the adapter's state into services. It caches each application's services
// while the application is unchanged, so an interval where nothing changed costs nothing and
// merge sees the same pointers.
type converter struct {
	cfg           Config
	include       []*regexp.Regexp
	exclude       []*regexp.Regexp
	statuses      map[string]bool
	volatileLabel map[string]bool

	byApp map[string]built // identity app: per application
	all   *built           // identity vip: everything, rebuilt when anything changed
}

type built struct {
	services []*registry.Service
	rejected map[string]rejection // where -> why
}

func newConverter(cfg Config) *converter {
	c := &converter{cfg: cfg, statuses: map[string]bool{}, volatileLabel: map[string]bool{}, byApp: map[string]built{}}
	for _, p := range cfg.Apps {
		c.include = append(c.include, regexp.MustCompile(anchor(p))) // validated
	}
	for _, p := range cfg.Exclude {
		c.exclude = append(c.exclude, regexp.MustCompile(anchor(p)))
	}
	for _, s := range cfg.Statuses {
		c.statuses[s] = true
	}
	for _, k := range registry.VolatileLabelKeys() {
		c.volatileLabel[k] = true
	}
	return c
}

// selected applies apps and exclude to an application name.
func (c *converter) selected(name string) bool {
	if len(c.include) > 0 && !slices.ContainsFunc(c.include, func(r *regexp.Regexp) bool { return r.MatchString(name) }) {
		return false
	}
	return !slices.ContainsFunc(c.exclude, func(r *regexp.Regexp) bool { return r.MatchString(name) })
}

// convert returns every service and every rejected instance of the state, rebuilding only the
// dirty applications, and clears the state's dirty set.
func (c *converter) convert(st *state) ([]*registry.Service, map[string]rejection) {
	defer clear(st.dirty)
	if c.cfg.Identity == IdentityVIP {
		if c.all == nil || len(st.dirty) > 0 {
			b := c.byVIP(st)
			c.all = &b
		}
		return c.all.services, c.all.rejected
	}
	for name := range st.dirty {
		ins, ok := st.apps[name]
		if !ok || !c.selected(name) {
			delete(c.byApp, name)
			continue
		}
		c.byApp[name] = c.appServices(name, ins)
	}
	var out []*registry.Service
	rejected := map[string]rejection{}
	for _, b := range c.byApp {
		out = append(out, b.services...)
		for w, r := range b.rejected {
			rejected[w] = r
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, rejected
}

// appServices maps one application: a Dubbo 3 application when its instances carry Dubbo's
// metadata (Dubbo 3 registered through Spring Cloud's Eureka registry), else a plain application.
func (c *converter) appServices(name string, ins map[string]instance) built {
	b := built{rejected: map[string]rejection{}}
	list := sortedInstances(ins)
	if isDubbo3(list) {
		var members []dubbo.Member
		for _, in := range list {
			m, err := dubbo.AppMember(name, in.ID, address(in), in.Port, decodeMetadata(in.Metadata))
			if err != nil {
				b.rejected[where(name, in)] = rejection{dubbo.Reason(err), err}
				continue
			}
			m.Instance.Healthy = c.statuses[effectiveStatus(in)]
			m.Instance.Enabled = m.Instance.Enabled && effectiveStatus(in) != StatusOutOfService
			m.Instance.Locality = locality(in)
			members = append(members, m)
		}
		svc := dubbo.ApplicationService(name, members)
		svc.SortInstances()
		b.services = []*registry.Service{svc}
		return b
	}
	svc := &registry.Service{Kind: registry.KindApplication, Name: name}
	b.services = []*registry.Service{c.fill(svc, list, name, b.rejected)}
	return b
}

// byVIP groups every selected instance by its vipAddress (a comma-separated list in Eureka).
func (c *converter) byVIP(st *state) built {
	b := built{rejected: map[string]rejection{}}
	groups := map[string][]instance{}
	var names []string
	for name, ins := range st.apps {
		if !c.selected(name) {
			continue
		}
		for _, in := range sortedInstances(ins) {
			n := 0
			for _, vip := range strings.Split(in.VIPAddress, ",") {
				if vip = strings.TrimSpace(vip); vip != "" {
					if groups[vip] == nil {
						names = append(names, vip)
					}
					groups[vip] = append(groups[vip], in)
					n++
				}
			}
			if n == 0 {
				b.rejected[where(name, in)] = rejection{ReasonNoVIP, fmt.Errorf("instance %q has no vipAddress and identity is vip", in.ID)}
			}
		}
	}
	slices.Sort(names)
	for _, vip := range names {
		svc := &registry.Service{Kind: registry.KindApplication, Name: vip}
		b.services = append(b.services, c.fill(svc, groups[vip], vip, b.rejected))
	}
	return b
}

// fill adds the instances to a plain application service: port "http" when the plain port is
// enabled, "https" when the secure port is, "management" with cfg.ManagementPort.
func (c *converter) fill(svc *registry.Service, list []instance, name string, rejected map[string]rejection) *registry.Service {
	ports := map[string]registry.Protocol{}
	for _, in := range list {
		inst, err := c.instance(in)
		if err != nil {
			rejected[where(name, in)] = *err
			continue
		}
		for p := range inst.Ports {
			ports[p] = registry.ProtocolHTTP
			if p == portHTTPS {
				ports[p] = registry.ProtocolHTTPS
			}
		}
		svc.Instances = append(svc.Instances, inst)
	}
	for _, p := range []string{portHTTP, portHTTPS, portManagement} {
		if proto, ok := ports[p]; ok {
			svc.Ports = append(svc.Ports, registry.Port{Name: p, Protocol: proto})
		}
	}
	svc.SortInstances()
	return svc
}

func (c *converter) instance(in instance) (registry.Instance, *rejection) {
	addr := address(in)
	if err := registry.CheckAddress(addr); err != nil {
		return registry.Instance{}, &rejection{ReasonBadAddress, fmt.Errorf("instance %q: ipAddr %q / hostName %q: %w", in.ID, trunc(in.IPAddr), trunc(in.HostName), err)}
	}
	ports := map[string]uint32{}
	if in.PortEnabled && in.Port > 0 && in.Port <= 65535 {
		ports[portHTTP] = in.Port
	}
	if in.SecurePortEnable && in.SecurePort > 0 && in.SecurePort <= 65535 {
		ports[portHTTPS] = in.SecurePort
	}
	if len(ports) == 0 {
		return registry.Instance{}, &rejection{ReasonNoPort, fmt.Errorf("instance %q has no enabled port in 1-65535 (port %d enabled=%t, securePort %d enabled=%t)",
			in.ID, in.Port, in.PortEnabled, in.SecurePort, in.SecurePortEnable)}
	}
	md := decodeMetadata(in.Metadata)
	if c.cfg.ManagementPort {
		if mp, err := strconv.ParseUint(md["management.port"], 10, 16); err == nil && mp > 0 && uint32(mp) != in.Port && uint32(mp) != in.SecurePort {
			ports[portManagement] = uint32(mp)
		}
	}
	status := effectiveStatus(in)
	return registry.Instance{
		ID:       in.ID,
		Address:  addr,
		Ports:    ports,
		Labels:   c.labels(md),
		Weight:   100,
		Healthy:  c.statuses[status],
		Enabled:  status != StatusOutOfService,
		Locality: locality(in),
	}, nil
}

// labels keeps the metadata that says something about the instance: not empty values (Polaris
// adds empty region and campus keys), not values that change on every restart, not credentials.
func (c *converter) labels(md map[string]string) map[string]string {
	out := make(map[string]string, len(md))
	for k, v := range md {
		if v == "" || c.volatileLabel[k] || dubbo.IsSensitive(k) {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// effectiveStatus is the status the instance is served with: an operator's override
// (overriddenStatus, set through PUT .../status) wins over what the instance reports.
func effectiveStatus(in instance) string {
	if o := in.OverriddenStatus; o != "" && o != StatusUnknown {
		return normStatus(o)
	}
	return in.Status
}

// address prefers the IP address; an instance registered by host name only uses the name.
func address(in instance) string {
	if in.IPAddr != "" && registry.CheckAddress(in.IPAddr) == nil {
		return in.IPAddr
	}
	if in.HostName != "" {
		return in.HostName
	}
	return in.IPAddr
}

// locality reads an Amazon availability zone (region = the zone without its letter, as Eureka
// derives it) or else Spring Cloud's zone metadata (and a region key where one is set).
func locality(in instance) registry.Locality {
	if az := in.AvailabilityZone; in.DataCenter == "Amazon" && az != "" {
		region := strings.TrimRight(az, "abcdefghijklmnopqrstuvwxyz")
		return registry.Locality{Region: region, Zone: az}
	}
	md := decodeMetadata(in.Metadata)
	return registry.Locality{Region: md["region"], Zone: md["zone"]}
}

func isDubbo3(list []instance) bool {
	for _, in := range list {
		md := decodeMetadata(in.Metadata)
		if md["dubbo.endpoints"] != "" || md["dubbo.metadata.revision"] != "" || md["dubbo.metadata.storage-type"] != "" {
			return true
		}
	}
	return false
}

func sortedInstances(m map[string]instance) []instance {
	out := make([]instance, 0, len(m))
	for _, in := range m {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// where names an instance on the status page: APP/instanceId.
func where(app string, in instance) string { return app + "/" + in.ID }

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
