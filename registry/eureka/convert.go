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
	// ReasonNoCommonPort: the instance gives none of its application's ports (see commonPorts).
	ReasonNoCommonPort = "no-common-port"
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
	warnings map[string]string    // service name -> ports left out (see commonPorts)
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

// warnings returns the port warnings of the last convert, by service name.
func (c *converter) warnings() map[string]string {
	out := map[string]string{}
	all := []built{}
	if c.all != nil {
		all = append(all, *c.all)
	}
	for _, b := range c.byApp {
		all = append(all, b)
	}
	for _, b := range all {
		for name, w := range b.warnings {
			out[name] = w
		}
	}
	return out
}

// appServices maps one application: a Dubbo 3 application when its instances carry Dubbo's
// metadata (Dubbo 3 registered through Spring Cloud's Eureka registry), else a plain application.
func (c *converter) appServices(name string, ins map[string]instance) built {
	b := built{rejected: map[string]rejection{}, warnings: map[string]string{}}
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
	b.services = []*registry.Service{c.fill(&b, svc, list, name)}
	return b
}

// byVIP groups every selected instance by its vipAddress (a comma-separated list in Eureka).
func (c *converter) byVIP(st *state) built {
	b := built{rejected: map[string]rejection{}, warnings: map[string]string{}}
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
		b.services = append(b.services, c.fill(&b, svc, groups[vip], vip))
	}
	return b
}

// fill adds the instances to a plain application service: port "http" when the plain port is
// enabled, "https" when the secure port is, "management" with cfg.ManagementPort, each only when
// every instance gives it (see commonPorts).
func (c *converter) fill(b *built, svc *registry.Service, list []instance, name string) *registry.Service {
	var ok []registry.Instance
	for _, in := range list {
		inst, err := c.instance(in)
		if err != nil {
			b.rejected[where(name, in)] = *err
			continue
		}
		ok = append(ok, inst)
	}
	keep, warning := commonPorts(name, ok)
	if warning != "" {
		b.warnings[name] = warning
	}
	for _, inst := range ok {
		if !slices.ContainsFunc(keep, func(p string) bool { _, ok := inst.Ports[p]; return ok }) {
			b.rejected[name+"/"+inst.ID] = rejection{ReasonNoCommonPort, fmt.Errorf("instance %q gives none of the ports %v that %s serves: %s", inst.ID, keep, name, warning)}
			continue
		}
		for p := range inst.Ports {
			if !slices.Contains(keep, p) {
				delete(inst.Ports, p)
			}
		}
		svc.Instances = append(svc.Instances, inst)
	}
	for _, p := range keep {
		proto := registry.ProtocolHTTP
		if p == portHTTPS {
			proto = registry.ProtocolHTTPS
		}
		svc.Ports = append(svc.Ports, registry.Port{Name: p, Protocol: proto})
	}
	svc.SortInstances()
	return svc
}

// commonPorts decides an application's ports: those every instance gives (over every status,
// so the ports do not come and go as instances go DOWN and UP, and no instance is sent traffic
// on a port it did not enable whatever translate's include options are). Istio cannot leave a
// port out for one endpoint: a port only some instances enable would send its traffic to the
// others on the service's port number, which they do not serve (Spring Cloud's
// securePortEnabled on some instances of an app: https on 8443 to instances that only serve
// http). Such a port is left out, and the warning names the instances that enable it. When no
// port is common (some instances http only, the others https only), the port more instances
// give is kept (ties: http, Eureka's primary port) and the caller rejects the others.
func commonPorts(name string, list []registry.Instance) (keep []string, warning string) {
	if len(list) == 0 {
		return nil, ""
	}
	var partial []string
	for _, p := range []string{portHTTP, portHTTPS, portManagement} {
		var with []string
		for _, in := range list {
			if _, ok := in.Ports[p]; ok {
				with = append(with, in.ID)
			}
		}
		switch len(with) {
		case 0:
		case len(list):
			keep = append(keep, p)
		default:
			partial = append(partial, fmt.Sprintf("%s on %d of %d instances (%s)", p, len(with), len(list), listIDs(with)))
		}
	}
	if len(keep) == 0 {
		keep = []string{portHTTP}
		if count(list, portHTTPS) > count(list, portHTTP) {
			keep = []string{portHTTPS}
		}
	}
	if len(partial) == 0 {
		return keep, ""
	}
	return keep, fmt.Sprintf("%s serves %v only: not every instance enables %s; Istio would send that port's traffic to the others, which do not serve it",
		name, keep, strings.Join(partial, ", "))
}

func count(list []registry.Instance, port string) int {
	n := 0
	for _, in := range list {
		if _, ok := in.Ports[port]; ok {
			n++
		}
	}
	return n
}

// listIDs names up to five instances, and how many more.
func listIDs(ids []string) string {
	if len(ids) <= 5 {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:5], ", "), len(ids)-5)
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
