package nacos

import (
	"maps"
	"slices"
	"sort"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// nsIface is a Dubbo interface within a Nacos namespace.
type nsIface struct{ ns, iface string }

// parsed is what one Nacos service's instances mean.
type parsed struct {
	dubbo3    bool              // a Dubbo 3 application (sticky while it has no instances)
	app       *registry.Service // a plain application, complete
	members   []dubbo.Member    // a Dubbo 3 application's instances
	providers []dubbo.Provider  // a providers: service's instances
	consumers []*dubbo.URL      // a consumers: service's instances
}

// state turns subscriptions into the services sent to the sink. A sent service (an output) may
// draw on several subscriptions: a Dubbo interface registered in two Nacos groups, an interface
// several Dubbo 3 applications map to, the consumers of a provider. Only the Run goroutine uses it.
type state struct {
	a         *Adapter
	subs      map[subKey]*subscription
	parsed    map[*subscription]*parsed
	outputs   map[*subscription][]registry.Key
	contrib   map[registry.Key]map[*subscription]bool
	rejected  map[*subscription]rejects
	consumers map[nsIface]map[*subscription]bool
	mapping   map[nsIface][]string // interface -> applications
	listening map[nsIface]*vo.ConfigParam
	emitted   map[registry.Key]uint64 // fingerprint of what the sink has
	invalid   map[registry.Key]string // outputs held back as invalid (rejected), with why
	dirtyKeys map[registry.Key]bool
}

func newState(a *Adapter) *state {
	return &state{
		a:         a,
		subs:      make(map[subKey]*subscription),
		parsed:    make(map[*subscription]*parsed),
		outputs:   make(map[*subscription][]registry.Key),
		contrib:   make(map[registry.Key]map[*subscription]bool),
		rejected:  make(map[*subscription]rejects),
		consumers: make(map[nsIface]map[*subscription]bool),
		mapping:   make(map[nsIface][]string),
		listening: make(map[nsIface]*vo.ConfigParam),
		emitted:   make(map[registry.Key]uint64),
		invalid:   make(map[registry.Key]string),
		dirtyKeys: make(map[registry.Key]bool),
	}
}

func (st *state) emittedCount() int { return len(st.emitted) }

func (st *state) add(s *subscription) {
	st.subs[s.key] = s
	if s.role == roleConsumer {
		k := nsIface{s.key.ns, s.dubbo.Interface}
		if st.consumers[k] == nil {
			st.consumers[k] = make(map[*subscription]bool)
		}
		st.consumers[k][s] = true
	}
}

// remove forgets a subscription: its outputs lose it (and are deleted when nothing else feeds
// them) and its rejections are withdrawn.
func (st *state) remove(s *subscription) {
	delete(st.subs, s.key)
	if s.role == roleConsumer {
		k := nsIface{s.key.ns, s.dubbo.Interface}
		delete(st.consumers[k], s)
		if len(st.consumers[k]) == 0 {
			delete(st.consumers, k)
		}
		st.consumersChanged(k)
	}
	st.setOutputs(s, nil)
	st.setRejects(s, nil)
	delete(st.parsed, s)
	delete(st.outputs, s)
}

// update re-reads a subscription's instances.
func (st *state) update(s *subscription, instances []model.Instance) {
	conv := st.a.conv
	rej := rejects{}
	p := &parsed{}
	switch s.role {
	case roleApp:
		prev := st.parsed[s]
		p.dubbo3 = isDubbo3(instances) || (len(instances) == 0 && prev != nil && prev.dubbo3)
		if p.dubbo3 {
			p.members = conv.appMembers(s.key, instances, rej)
		} else {
			p.app = conv.appService(s.key, instances, rej)
		}
	case roleProvider:
		p.providers = conv.providers(s.key, s.dubbo, instances, rej)
	case roleConsumer:
		p.consumers = consumerURLs(s.key, s.dubbo, instances)
	}
	st.parsed[s] = p
	st.setRejects(s, rej)
	st.setOutputs(s, st.outputsOf(s))
	if s.role == roleConsumer {
		st.consumersChanged(nsIface{s.key.ns, s.dubbo.Interface})
	}
}

// outputsOf returns the services a subscription feeds. One that has not delivered instances yet
// feeds none: nothing is known about it.
func (st *state) outputsOf(s *subscription) []registry.Key {
	p := st.parsed[s]
	if p == nil {
		return nil
	}
	k := s.key
	switch s.role {
	case roleApp:
		if !p.dubbo3 {
			return []registry.Key{{Kind: registry.KindApplication, Namespace: k.ns, Group: k.group, Name: k.name}}
		}
		if st.a.cfg.Dubbo.Dubbo3Hosts != HostsInterface {
			return []registry.Key{{Kind: registry.KindDubboApplication, Namespace: k.ns, Group: k.group, Name: k.name}}
		}
		ifaces := st.aliases(k.ns, k.name)
		out := make([]registry.Key, 0, len(ifaces))
		for _, i := range ifaces {
			out = append(out, registry.Key{Kind: registry.KindDubboInterface, Namespace: k.ns, Name: i})
		}
		return out
	case roleProvider:
		return []registry.Key{{Kind: registry.KindDubboInterface, Namespace: k.ns, Group: s.dubbo.Group, Name: s.dubbo.Interface, Version: s.dubbo.Version}}
	}
	return nil
}

func (st *state) setOutputs(s *subscription, keys []registry.Key) {
	for _, k := range st.outputs[s] {
		delete(st.contrib[k], s)
		if len(st.contrib[k]) == 0 {
			delete(st.contrib, k)
		}
		st.dirtyKeys[k] = true
	}
	for _, k := range keys {
		if st.contrib[k] == nil {
			st.contrib[k] = make(map[*subscription]bool)
		}
		st.contrib[k][s] = true
		st.dirtyKeys[k] = true
	}
	if keys == nil {
		delete(st.outputs, s)
	} else {
		st.outputs[s] = keys
	}
}

// setRejects reports new (or changed) malformed entries of a subscription and withdraws those
// now gone. An entry still malformed at the next read is not reported again.
func (st *state) setRejects(s *subscription, rej rejects) {
	old := st.rejected[s]
	for where, r := range rej {
		if o, ok := old[where]; ok && o.reason == r.reason && o.err.Error() == r.err.Error() {
			continue
		}
		st.a.sink.Reject(where, r.reason, r.err)
		st.a.met.rejected.WithLabelValues(r.reason).Inc()
	}
	for where := range old {
		if _, ok := rej[where]; !ok {
			st.a.sink.Accept(where)
		}
	}
	if len(rej) == 0 {
		delete(st.rejected, s)
	} else {
		st.rejected[s] = rej
	}
}

// consumersChanged marks the outputs whose consumer list may have changed.
func (st *state) consumersChanged(k nsIface) {
	for key := range st.contrib {
		if key.Namespace != k.ns {
			continue
		}
		if key.Kind == registry.KindDubboApplication || (key.Kind == registry.KindDubboInterface && key.Name == k.iface) {
			st.dirtyKeys[key] = true
		}
	}
}

// applyMapping records a new mapping value; the Dubbo 3 applications of the namespace get their
// aliases (or, in interface mode, their outputs) again.
func (st *state) applyMapping(k nsIface, data string) {
	apps := dubbo.ParseMapping(data)
	if slices.Equal(apps, st.mapping[k]) {
		return
	}
	if len(apps) == 0 {
		delete(st.mapping, k)
	} else {
		st.mapping[k] = apps
	}
	for _, s := range st.subs {
		if s.key.ns == k.ns && s.role == roleApp {
			if p := st.parsed[s]; p != nil && p.dubbo3 {
				st.setOutputs(s, st.outputsOf(s))
			}
		}
	}
}

// aliases returns the interfaces the mapping maps to an application.
func (st *state) aliases(ns, app string) []string {
	var out []string
	for k, apps := range st.mapping {
		if k.ns != ns {
			continue
		}
		for _, a := range apps {
			if a == app {
				out = append(out, k.iface)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func (st *state) consumerApps(ns string, match func(*dubbo.URL) bool, ifaces ...string) []string {
	set := map[string]bool{}
	for _, i := range ifaces {
		for s := range st.consumers[nsIface{ns, i}] {
			p := st.parsed[s]
			if p == nil {
				continue
			}
			for _, u := range p.consumers {
				if app := u.Params["application"]; app != "" && match(u) {
					set[app] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(set)) // nil when empty
}

// build assembles one output from its contributors; nil when nothing feeds it.
func (st *state) build(k registry.Key) *registry.Service {
	cs := st.contributors(k)
	if len(cs) == 0 {
		return nil
	}
	switch k.Kind {
	case registry.KindApplication:
		// A copy: the sink owns what it is sent, and parsed is kept.
		return st.parsed[cs[0]].app.Clone()
	case registry.KindDubboApplication:
		svc := dubbo.ApplicationService(k.Name, st.parsed[cs[0]].members)
		svc.Namespace, svc.Group = k.Namespace, k.Group
		if ifaces := st.aliases(k.Namespace, k.Name); len(ifaces) > 0 {
			if st.a.cfg.Dubbo.Dubbo3Hosts == HostsBoth {
				svc.Aliases = ifaces
			}
			// The consumers of any interface the application serves consume the application.
			svc.Consumers = st.consumerApps(k.Namespace, func(*dubbo.URL) bool { return true }, ifaces...)
		}
		return svc
	case registry.KindDubboInterface:
		sk := dubbo.ServiceKey{Interface: k.Name, Group: k.Group, Version: k.Version}
		var provs []dubbo.Provider
		for _, s := range cs {
			p := st.parsed[s]
			provs = append(provs, p.providers...)
			for _, m := range p.members {
				provs = append(provs, dubbo.Provider{Key: sk, Member: m})
			}
		}
		svc := dubbo.InterfaceService(sk, provs)
		svc.Namespace = k.Namespace
		svc.Consumers = st.consumerApps(k.Namespace, func(u *dubbo.URL) bool { return dubbo.ConsumerMatches(u, sk) }, k.Name)
		return svc
	}
	return nil
}

// contributors returns the subscriptions feeding an output, in a stable order.
func (st *state) contributors(k registry.Key) []*subscription {
	out := make([]*subscription, 0, len(st.contrib[k]))
	for s := range st.contrib[k] {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].key, out[j].key
		if a.group != b.group {
			return a.group < b.group
		}
		return a.name < b.name
	})
	return out
}

// rejection is a malformed entry found while reading a service.
type rejection struct {
	reason string
	err    error
}

// rejects collects the malformed entries of one read, by where.
type rejects map[string]rejection

func (r rejects) add(where, reason string, err error) { r[where] = rejection{reason, err} }
