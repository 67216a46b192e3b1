package zookeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Payload classes of Curator service instances under the services root.
const (
	classDubbo  = "org.apache.dubbo.registry.zookeeper.ZookeeperInstance"
	classSpring = "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance"
)

// Reasons this package adds to dubbo's.
const (
	reasonEmptyData      = "empty-data"
	reasonBadPayload     = "bad-payload"
	reasonUnknownPayload = "unknown-payload"
)

// appNode is /services/<app> as last read.
type appNode struct {
	name, path string
	instances  map[string]*instanceEntry // by child name (the Curator id)
	// kinds are the kinds of services the application's instances made while the node existed,
	// so an application whose last instance left is still sent, empty, until its node goes.
	kinds map[registry.Kind]bool
	// lastPorts are the ports each kind of service last had with instances. An application's
	// ports come only from its instances, so without them an application scaled to zero would be
	// sent with no ports: Istio builds no cluster from that, and its interface aliases, no longer
	// beside a TCP port, would move into its ServiceEntry as extra hosts and back out on scale-up.
	lastPorts map[registry.Kind][]registry.Port
}

// instanceEntry is one Curator instance: the last good parse of its data.
type instanceEntry struct {
	kind   registry.Kind // empty until the data parsed once
	member dubbo.Member
	mzxid  int64
	where  string
}

func (w *watcher) applyServicesRoot(p string, children []string, gone bool) {
	if gone {
		for _, a := range w.apps {
			w.removeApp(a)
		}
		w.watchRoot(p)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		present[c] = true
		if _, ok := w.apps[c]; !ok {
			a := &appNode{name: c, path: path.Join(p, c), instances: make(map[string]*instanceEntry),
				kinds: make(map[registry.Kind]bool), lastPorts: make(map[registry.Kind][]registry.Port)}
			w.apps[c] = a
			w.pend.add(a.path, causeEvent)
		}
	}
	for name, a := range w.apps {
		if !present[name] {
			w.removeApp(a)
		}
	}
}

func (w *watcher) removeApp(a *appNode) {
	for _, e := range a.instances {
		w.accept(e.where)
		w.pend.setWatched(e.where, false)
	}
	delete(w.apps, a.name)
	w.pend.setWatched(a.path, false)
	w.touchedApp[a.name] = true
}

func (w *watcher) applyApp(p string, children []string, gone bool) {
	a := w.apps[path.Base(p)]
	if a == nil {
		return
	}
	if gone {
		w.removeApp(a)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		present[c] = true
		if _, ok := a.instances[c]; !ok {
			e := &instanceEntry{where: path.Join(p, c)}
			a.instances[c] = e
			w.pend.add(e.where, causeEvent)
		}
	}
	for c, e := range a.instances {
		if !present[c] {
			w.accept(e.where)
			w.pend.setWatched(e.where, false)
			delete(a.instances, c)
			w.touchedApp[a.name] = true
		}
	}
}

func (w *watcher) applyInstance(p string, data []byte, stat *zk.Stat, gone bool) {
	a := w.apps[path.Base(path.Dir(p))]
	if a == nil {
		return
	}
	id := path.Base(p)
	e := a.instances[id]
	if e == nil {
		return
	}
	if gone {
		w.accept(e.where)
		delete(a.instances, id)
		w.touchedApp[a.name] = true
		return
	}
	if stat != nil && stat.Mzxid == e.mzxid {
		return // unchanged since the last read (a resync)
	}
	if stat != nil {
		e.mzxid = stat.Mzxid
	}
	kind, m, err := parseCurator(a.name, id, data)
	if err != nil {
		// The last good parse, if any, stays: a garbled update must not remove an instance.
		w.reject(e.where, dubbo.Reason(err), err)
		return
	}
	w.accept(e.where)
	e.kind, e.member = kind, m
	a.kinds[kind] = true
	w.touchedApp[a.name] = true
}

// curatorInstance is Curator's JSON ServiceInstance.
type curatorInstance struct {
	Name    string          `json:"name"`
	ID      string          `json:"id"`
	Address string          `json:"address"`
	Port    *int64          `json:"port"`
	SSLPort *int64          `json:"sslPort"`
	Enabled *bool           `json:"enabled"`
	Payload json.RawMessage `json:"payload"`
}

type curatorPayload struct {
	Class    string            `json:"@class"`
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata"`
}

// parseCurator maps a Curator instance to a member of a Dubbo 3 application or of a Spring Cloud
// application, told apart by the payload class.
func parseCurator(app, id string, data []byte) (registry.Kind, dubbo.Member, error) {
	if len(data) == 0 {
		return "", dubbo.Member{}, &dubbo.Error{Reason: reasonEmptyData, Err: errors.New("instance znode has no data (a Curator instance is JSON)")}
	}
	var ci curatorInstance
	if err := json.Unmarshal(data, &ci); err != nil {
		return "", dubbo.Member{}, &dubbo.Error{Reason: reasonBadPayload, Err: fmt.Errorf("instance data is not a Curator ServiceInstance: %w", err)}
	}
	var pl curatorPayload
	if len(ci.Payload) > 0 && string(ci.Payload) != "null" {
		if err := json.Unmarshal(ci.Payload, &pl); err != nil {
			return "", dubbo.Member{}, &dubbo.Error{Reason: reasonBadPayload, Err: fmt.Errorf("instance payload: %w", err)}
		}
	}
	port := uint32(0)
	if ci.Port != nil && *ci.Port > 0 && *ci.Port <= 65535 {
		port = uint32(*ci.Port)
	}
	var kind registry.Kind
	var m dubbo.Member
	var err error
	switch pl.Class {
	case classDubbo:
		kind = registry.KindDubboApplication
		m, err = dubbo.AppMember(app, id, ci.Address, port, pl.Metadata)
	case classSpring:
		kind = registry.KindApplication
		m, err = springMember(app, id, ci, port, pl.Metadata)
	case "":
		return "", dubbo.Member{}, &dubbo.Error{Reason: reasonUnknownPayload, Err: errors.New("instance has no payload class: neither a Dubbo 3 nor a Spring Cloud Zookeeper instance")}
	default:
		return "", dubbo.Member{}, &dubbo.Error{Reason: reasonUnknownPayload, Err: fmt.Errorf("payload class %q is neither Dubbo 3's nor Spring Cloud Zookeeper's", truncateName(pl.Class))}
	}
	if err != nil {
		return "", dubbo.Member{}, err
	}
	if ci.Enabled != nil && !*ci.Enabled {
		m.Instance.Enabled = false
	}
	return kind, m, nil
}

// springMember maps a Spring Cloud Zookeeper instance: port is its HTTP port, sslPort (set when
// the application is secure) its HTTPS port; metadata instance_status OUT_OF_SERVICE disables it.
func springMember(app, id string, ci curatorInstance, port uint32, metadata map[string]string) (dubbo.Member, error) {
	if ci.Address == "" {
		return dubbo.Member{}, &dubbo.Error{Reason: dubbo.ReasonBadHost, Err: fmt.Errorf("instance %q has no address", truncateName(id))}
	}
	// Reuse the Dubbo address check: an IP or a host name.
	if _, err := dubbo.ParseURL("http://" + hostForURL(ci.Address) + "/"); err != nil {
		return dubbo.Member{}, err
	}
	// Istio's rule for endpoint addresses: an address it would drop rejects the instance here.
	if err := registry.CheckAddress(trimBrackets(ci.Address)); err != nil {
		return dubbo.Member{}, &dubbo.Error{Reason: dubbo.ReasonBadHost, Err: fmt.Errorf("instance %q: address: %w", truncateName(id), err)}
	}
	m := dubbo.Member{Instance: registry.Instance{ID: id, Address: trimBrackets(ci.Address), Ports: make(map[string]uint32), Healthy: true, Enabled: true, Weight: dubbo.DefaultWeight}}
	if port != 0 {
		m.Ports = append(m.Ports, registry.Port{Name: "http", Protocol: registry.ProtocolHTTP})
		m.Instance.Ports["http"] = port
	}
	if ci.SSLPort != nil && *ci.SSLPort > 0 && *ci.SSLPort <= 65535 {
		m.Ports = append(m.Ports, registry.Port{Name: "https", Protocol: registry.ProtocolHTTPS})
		m.Instance.Ports["https"] = uint32(*ci.SSLPort)
	}
	if len(m.Ports) == 0 {
		return dubbo.Member{}, &dubbo.Error{Reason: dubbo.ReasonBadPort, Err: fmt.Errorf("instance %q has neither a port nor an sslPort in 1-65535", truncateName(id))}
	}
	labels := dubbo.Labels(metadata)
	if labels == nil {
		labels = make(map[string]string, 1)
	}
	if s := metadata["instance_status"]; s != "" && s != "UP" {
		m.Instance.Enabled = false
	}
	delete(labels, "instance_status")
	labels["app"] = app
	m.Instance.Labels = labels
	return m, nil
}

func hostForURL(h string) string {
	h = trimBrackets(h)
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			return "[" + h + "]"
		}
	}
	return h
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

func (w *watcher) applyMappingRoot(p string, children []string, gone bool) {
	if gone {
		for n := range w.mappingNodes {
			w.removeMapping(n)
		}
		w.watchRoot(p)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		present[c] = true
		if !w.mappingNodes[c] {
			w.mappingNodes[c] = true
			w.pend.add(path.Join(p, c), causeEvent)
		}
	}
	for n := range w.mappingNodes {
		if !present[n] {
			w.removeMapping(n)
		}
	}
}

func (w *watcher) removeMapping(node string) {
	delete(w.mappingNodes, node)
	w.pend.setWatched(path.Join(w.a.cfg.MappingRoot, node), false)
	w.setMapping(mappingInterface(node), nil)
}

func (w *watcher) applyMapping(p string, data []byte, gone bool) {
	node := path.Base(p)
	if !w.mappingNodes[node] {
		return
	}
	if gone {
		w.removeMapping(node)
		return
	}
	w.setMapping(mappingInterface(node), dubbo.ParseMapping(string(data)))
}

// mappingInterface decodes a mapping node name (Dubbo writes the interface as is; URL-encoded
// names are tolerated).
func mappingInterface(node string) string {
	if d, err := url.QueryUnescape(node); err == nil && d != "" {
		return d
	}
	return node
}

// setMapping records the applications an interface maps to and touches what depends on it.
func (w *watcher) setMapping(iface string, apps []string) {
	old := w.mapping[iface]
	if slices.Equal(old, apps) {
		return
	}
	if len(apps) == 0 {
		delete(w.mapping, iface)
	} else {
		w.mapping[iface] = apps
	}
	w.touchedIface[iface] = true
	for _, a := range old {
		w.touchedApp[a] = true
	}
	for _, a := range apps {
		w.touchedApp[a] = true
	}
}

// aliases lists the interfaces the mapping names the application for.
func (w *watcher) aliases(app string) []string {
	var out []string
	for iface, apps := range w.mapping {
		if slices.Contains(apps, app) {
			out = append(out, iface)
		}
	}
	sort.Strings(out)
	return out
}

// buildApp computes the services of one application node: the Dubbo 3 application (unless
// Dubbo3Hosts is "interface") and the Spring Cloud application, each when such instances were
// seen while the node exists.
func (w *watcher) buildApp(name string) map[registry.Key]*registry.Service {
	out := make(map[registry.Key]*registry.Service)
	a := w.apps[name]
	if a == nil {
		return out
	}
	dubboMembers, springMembers := membersOf(a)
	if a.kinds[registry.KindDubboApplication] && w.a.cfg.Dubbo3Hosts != HostsInterface {
		s := dubbo.ApplicationService(name, dubboMembers)
		if w.a.cfg.Dubbo3Hosts == HostsBoth {
			s.Aliases = w.aliases(name)
			s.Consumers = w.interfaceConsumers(s.Aliases)
		}
		out[s.Key()] = s
	}
	if a.kinds[registry.KindApplication] {
		s := dubbo.Assemble(springMembers)
		s.Kind, s.Name, s.Labels = registry.KindApplication, name, map[string]string{"app": name}
		out[s.Key()] = s
	}
	for k, s := range out {
		if len(s.Instances) > 0 {
			a.lastPorts[s.Kind] = s.Ports
		} else if len(s.Ports) == 0 {
			s.Ports = a.lastPorts[s.Kind]
		}
		if err := s.Validate(); err != nil {
			w.reject("service "+k.String(), "invalid-service", err)
			delete(out, k)
		}
	}
	return out
}

func membersOf(a *appNode) (dubboMembers, springMembers []dubbo.Member) {
	for _, id := range sortedNames(a.instances) {
		e := a.instances[id]
		switch e.kind {
		case registry.KindDubboApplication:
			dubboMembers = append(dubboMembers, e.member)
		case registry.KindApplication:
			springMembers = append(springMembers, e.member)
		}
	}
	return dubboMembers, springMembers
}

// mappedMembers returns, for "interface" mode, the Dubbo 3 instances of the applications the
// mapping names for an interface; ok is false when none of them has a Dubbo 3 node.
func (w *watcher) mappedMembers(iface string) (members []dubbo.Member, apps []string, ok bool) {
	apps = w.mapping[iface]
	for _, name := range apps {
		a := w.apps[name]
		if a == nil || !a.kinds[registry.KindDubboApplication] {
			continue
		}
		ok = true
		m, _ := membersOf(a)
		members = append(members, m...)
	}
	return members, apps, ok
}

// interfaceConsumers lists the consumer applications of the interfaces, any group or version.
func (w *watcher) interfaceConsumers(ifaces []string) []string {
	set := make(map[string]bool)
	for _, iface := range ifaces {
		for _, n := range w.byName[iface] {
			for _, e := range n.cats["consumers"] {
				if app := consumerApp(e); app != "" {
					set[app] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(set)) // nil when empty
}

// expandTouched returns the interfaces and applications whose services must be rebuilt: those
// touched, plus what depends on them through the mapping, and resets the touched sets.
func (w *watcher) expandTouched() (ifaces, apps map[string]bool) {
	ifaces, apps = w.touchedIface, w.touchedApp
	w.touchedIface, w.touchedApp = make(map[string]bool), make(map[string]bool)
	switch w.a.cfg.Dubbo3Hosts {
	case HostsBoth:
		// An application's consumers are its mapped interfaces' consumers.
		for iface := range ifaces {
			for _, a := range w.mapping[iface] {
				apps[a] = true
			}
		}
	case HostsInterface:
		// A mapped interface's instances are its applications'.
		for a := range apps {
			for iface, list := range w.mapping {
				if slices.Contains(list, a) {
					ifaces[iface] = true
				}
			}
		}
	}
	return ifaces, apps
}
