package zookeeper

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

func isCategory(s string) bool {
	switch s {
	case "providers", "consumers", "configurators", "routers":
		return true
	}
	return false
}

// isReserved reports children of a Dubbo root that are Dubbo 3's own nodes, not interfaces:
// mapping (interface->application), config (config center) and metadata (metadata report).
func isReserved(name string) bool {
	switch name {
	case "mapping", "config", "metadata":
		return true
	}
	return false
}

// ifaceNode is /<root>/<interface> as last read.
type ifaceNode struct {
	root, path, name string
	// cats maps a category to its children: child name -> parsed URL (nil when rejected).
	cats      map[string]map[string]*urlEntry
	cfgStatus []configuratorStatus
}

type urlEntry struct {
	url   *dubbo.URL
	where string
	rule  *registry.Rule // a routers/ URL's condition rule (route.go)
}

func (w *watcher) applyDubboRoot(p string, children []string, gone bool) {
	if gone {
		for _, n := range w.ifaces {
			if n.root == p {
				w.removeIface(n)
			}
		}
		w.watchRoot(p)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		cp := path.Join(p, c)
		if isReserved(c) || cp == w.a.cfg.ServicesRoot || cp == w.a.cfg.MappingRoot {
			continue
		}
		present[cp] = true
		if _, ok := w.ifaces[cp]; ok {
			continue
		}
		name, err := url.QueryUnescape(c)
		if err != nil || name == "" {
			w.reject(cp, dubbo.ReasonBadEncoding, fmt.Errorf("interface node name %q is not URL-encoded: %v", truncateName(c), err))
			continue
		}
		n := &ifaceNode{root: p, path: cp, name: name, cats: make(map[string]map[string]*urlEntry)}
		w.ifaces[cp] = n
		w.byName[name] = append(w.byName[name], n)
		w.pend.add(cp, causeEvent)
	}
	for cp, n := range w.ifaces {
		if n.root == p && !present[cp] {
			w.removeIface(n)
		}
	}
	for where := range w.rejected {
		// A malformed interface node that went away.
		if path.Dir(where) == p && !slices.Contains(children, path.Base(where)) {
			w.accept(where)
		}
	}
}

func (w *watcher) removeIface(n *ifaceNode) {
	for cat := range n.cats {
		w.dropCategory(n, cat)
	}
	delete(w.ifaces, n.path)
	list := w.byName[n.name]
	for i, m := range list {
		if m == n {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.byName, n.name)
	} else {
		w.byName[n.name] = list
	}
	w.pend.setWatched(n.path, false)
	w.accept(n.path)
	w.touchedIface[n.name] = true
}

func (w *watcher) dropCategory(n *ifaceNode, cat string) {
	for c, e := range n.cats[cat] {
		w.accept(e.where)
		if cat == "routers" {
			w.setRoute(n.path+"/"+cat+"/"+c, nil)
		}
	}
	delete(n.cats, cat)
	w.pend.setWatched(n.path+"/"+cat, false)
	w.touchedIface[n.name] = true
}

func (w *watcher) applyInterface(p string, children []string, gone bool) {
	n := w.ifaces[p]
	if n == nil {
		return
	}
	if gone {
		w.removeIface(n)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		if !isCategory(c) {
			continue
		}
		present[c] = true
		if _, ok := n.cats[c]; !ok {
			n.cats[c] = make(map[string]*urlEntry)
			w.pend.add(p+"/"+c, causeEvent)
		}
	}
	for c := range n.cats {
		if !present[c] {
			w.dropCategory(n, c)
		}
	}
}

func (w *watcher) applyCategory(p string, children []string, gone bool) {
	n := w.ifaces[path.Dir(p)]
	cat := path.Base(p)
	if n == nil {
		return
	}
	entries, ok := n.cats[cat]
	if !ok {
		return
	}
	if gone {
		w.dropCategory(n, cat)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		present[c] = true
		if _, ok := entries[c]; ok {
			continue
		}
		entries[c] = w.parseChild(n, p, cat, c)
		w.touchedIface[n.name] = true
		if cat == "routers" {
			w.setRoute(p+"/"+c, entries[c].rule)
		}
	}
	for c, e := range entries {
		if !present[c] {
			w.accept(e.where)
			if cat == "routers" {
				w.setRoute(p+"/"+c, nil)
			}
			delete(entries, c)
			w.touchedIface[n.name] = true
		}
	}
}

// parseChild parses a URL under a category; malformed ones are rejected and kept as a nil URL,
// so they are parsed (and reported) once, not on every change of their siblings.
func (w *watcher) parseChild(n *ifaceNode, parent, cat, name string) *urlEntry {
	e := &urlEntry{where: describeChild(parent, name)}
	u, err := dubbo.ParseZNodeName(name)
	if err == nil {
		err = checkChild(n.name, cat, u)
	}
	if err == nil && cat == "routers" {
		if e.rule, err = dubbo.RouteRule(n.name, parent+"/"+name, u); e.rule != nil {
			e.rule.Source = e.where
		}
	}
	if err != nil {
		w.reject(e.where, dubbo.Reason(err), fmt.Errorf("%s: %w", cat, err))
		return e
	}
	e.url = u
	return e
}

// checkChild validates a parsed URL for its category.
func checkChild(iface, cat string, u *dubbo.URL) error {
	switch cat {
	case "providers":
		if _, err := dubbo.NewProvider(u); err != nil {
			return err
		}
		if got := u.Interface(); got != iface {
			return &dubbo.Error{Reason: dubbo.ReasonInterfaceMismatch, Err: fmt.Errorf("provider of interface %q registered under interface %q (Dubbo consumers ignore it)", got, iface)}
		}
	case "consumers":
		if got := u.Interface(); got != iface && got != "*" {
			return &dubbo.Error{Reason: dubbo.ReasonInterfaceMismatch, Err: fmt.Errorf("consumer of interface %q registered under interface %q", got, iface)}
		}
	case "configurators":
		if _, err := dubbo.NewConfigurator(u); err != nil {
			return err
		}
		if _, err := dubbo.Weight(u.Params); err != nil {
			return err
		}
	}
	return nil
}

// buildInterface computes the services of one interface name over every root: one per group and
// version among its providers, configurators applied, consumers attached; in "interface" mode
// also the service the Dubbo 3 mapping names (unless a Dubbo 2 service of that key exists).
func (w *watcher) buildInterface(name string) map[registry.Key]*registry.Service {
	nodes := append([]*ifaceNode(nil), w.byName[name]...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].path < nodes[j].path })
	var providers []dubbo.Provider
	var consumers []*dubbo.URL
	for _, n := range nodes {
		cfgs, entries := configuratorsOf(n)
		applied := make(map[*dubbo.Configurator]int)
		for _, c := range sortedNames(n.cats["providers"]) {
			e := n.cats["providers"][c]
			if e.url == nil {
				continue
			}
			u, used := cfgs.Apply(e.url)
			p, err := dubbo.NewProvider(u)
			if err != nil {
				w.a.log.Warn("provider invalid after applying configurators", "provider", e.where, "err", err)
				continue
			}
			for _, c := range used {
				applied[c]++
			}
			providers = append(providers, p)
		}
		n.cfgStatus = n.cfgStatus[:0]
		for _, c := range entries {
			st := configuratorStatus{Interface: n.name, Configurator: c.String(), AppliedTo: applied[c]}
			switch {
			case c.NotForProviders() != "":
				st.Note = "not applied: " + c.NotForProviders()
			case !slices.Contains(cfgs, c):
				st.Note = "not applied: cleared by an empty:// configurator, or sets nothing"
			}
			n.cfgStatus = append(n.cfgStatus, st)
		}
		for _, c := range sortedNames(n.cats["consumers"]) {
			if u := n.cats["consumers"][c].url; u != nil {
				consumers = append(consumers, u)
			}
		}
	}
	out := make(map[registry.Key]*registry.Service)
	for _, p := range providers {
		if _, done := out[keyOf(p.Key)]; done {
			continue
		}
		s := dubbo.InterfaceService(p.Key, providers)
		s.Consumers = consumerApps(consumers, p.Key)
		out[s.Key()] = s
	}
	if w.a.cfg.Dubbo3Hosts == HostsInterface {
		// The interface as the Dubbo 3 mapping names it: its applications' instances, merged with
		// the interface-level registrations of the same key (a provider that registers both
		// ways appears once; its interface-level weight and state win).
		k := dubbo.ServiceKey{Interface: name}
		if members, apps, ok := w.mappedMembers(name); ok {
			for _, p := range providers {
				if p.Key == k {
					members = append(members, p.Member)
				}
			}
			s := dubbo.Assemble(members)
			s.Kind, s.Name = registry.KindDubboInterface, name
			if old := out[keyOf(k)]; old != nil {
				s.Labels = old.Labels
			} else if len(apps) == 1 {
				s.Labels = map[string]string{"app": apps[0]}
			}
			s.Consumers = consumerApps(consumers, k)
			out[s.Key()] = s
		}
	}
	for k, s := range out {
		if err := s.Validate(); err != nil {
			w.reject("service "+k.String(), "invalid-service", err)
			delete(out, k)
		}
	}
	return out
}

// configuratorsOf returns the configurators of an interface node, in Dubbo's order, and every
// valid one as listed (for the status page).
func configuratorsOf(n *ifaceNode) (dubbo.Configurators, []*dubbo.Configurator) {
	var all []*dubbo.Configurator
	for _, c := range sortedNames(n.cats["configurators"]) {
		e := n.cats["configurators"][c]
		if e.url == nil {
			continue
		}
		if cfg, err := dubbo.NewConfigurator(e.url); err == nil {
			all = append(all, cfg)
		}
	}
	return dubbo.SortConfigurators(all), all
}

// consumerApps lists the applications of the consumer URLs that refer to key.
func consumerApps(consumers []*dubbo.URL, key dubbo.ServiceKey) []string {
	set := make(map[string]bool)
	for _, c := range consumers {
		if app := c.Param("application"); app != "" && dubbo.ConsumerMatches(c, key) {
			set[app] = true
		}
	}
	return slices.Sorted(maps.Keys(set)) // nil when empty
}

func keyOf(k dubbo.ServiceKey) registry.Key {
	return registry.Key{Kind: registry.KindDubboInterface, Group: k.Group, Name: k.Interface, Version: k.Version}
}

// describeChild names a child znode for logs and the status page: its parent and the decoded
// name, credentials masked, cut to a readable length.
func describeChild(parent, name string) string {
	s := name
	if d, err := url.QueryUnescape(name); err == nil {
		s = d
	}
	s = maskSecrets(s)
	s = truncateName(s)
	if parent == "" {
		return s
	}
	return parent + "/" + s
}

// maskSecrets replaces the values of sensitive parameters in a URL-like string.
func maskSecrets(s string) string {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	pairs := strings.FieldsFunc(s[q+1:], func(r rune) bool { return r == '&' || r == ';' })
	for i, p := range pairs {
		if k, _, ok := strings.Cut(p, "="); ok && dubbo.IsSensitive(k) {
			pairs[i] = k + "=***"
		}
	}
	return s[:q+1] + strings.Join(pairs, "&")
}

func truncateName(s string) string {
	const n = 300
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", strings.ToValidUTF8(s[:n], ""), len(s))
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// consumerApp is the application of a parsed consumers/ entry, "" if it has none.
func consumerApp(e *urlEntry) string {
	if e == nil || e.url == nil {
		return ""
	}
	return e.url.Param("application")
}
