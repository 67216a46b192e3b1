package nacos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// groupedName is a service of a namespace.
type groupedName struct{ group, name string }

// normalizeNamespace maps the ids servers give the default namespace to "public": "" (Nacos
// before 2.4) and, on Polaris, "default".
func normalizeNamespace(ns, flavor string) string {
	if ns == "" || (flavor == FlavorPolaris && ns == "default") {
		return PublicNamespace
	}
	return ns
}

// list reads the selected service names of every selected namespace.
func (a *Adapter) list(ctx context.Context) (map[subKey]bool, error) {
	start := time.Now()
	defer func() { a.met.pollDuration.Observe(time.Since(start).Seconds()) }()
	a.setStatus(func(s *status) { s.LastPoll = start })
	namespaces, err := a.selectedNamespaces(ctx)
	if err != nil {
		a.met.polls.WithLabelValues("error").Inc()
		return nil, err
	}
	want := make(map[subKey]bool)
	for _, ns := range namespaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := a.namingFor(ns); err != nil {
			a.met.polls.WithLabelValues("error").Inc()
			return nil, err
		}
		names, err := a.listNamespace(ctx, ns)
		if err != nil {
			a.met.polls.WithLabelValues("error").Inc()
			return nil, err
		}
		for _, g := range names {
			if a.selected(g.name) {
				want[subKey{ns: ns, group: g.group, name: g.name}] = true
			}
		}
	}
	a.namespaces = namespaces
	a.met.polls.WithLabelValues("ok").Inc()
	a.met.up.Set(1)
	a.met.lastSuccess.SetToCurrentTime()
	a.setStatus(func(s *status) {
		s.Namespaces, s.Reachable, s.LastSuccess = namespaces, true, time.Now()
		if !a.failed {
			s.LastError = ""
		}
	})
	return want, nil
}

func (a *Adapter) selectedNamespaces(ctx context.Context) ([]string, error) {
	if !isAll(a.cfg.Namespaces) {
		out := make([]string, 0, len(a.cfg.Namespaces))
		seen := map[string]bool{}
		for _, ns := range a.cfg.Namespaces {
			ns = normalizeNamespace(ns, a.cfg.Flavor)
			if !seen[ns] {
				seen[ns] = true
				out = append(out, ns)
			}
		}
		return out, nil
	}
	nss, err := a.console.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(nss)
	return nss, nil
}

// selected applies the include and exclude patterns, and drops Dubbo categories that carry
// nothing to serve.
func (a *Adapter) selected(name string) bool {
	if r, _ := parseName(name); r == roleIgnored {
		return false
	}
	if len(a.include) > 0 {
		ok := false
		for _, re := range a.include {
			if re.MatchString(name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range a.exclude {
		if re.MatchString(name) {
			return false
		}
	}
	return true
}

// listNamespace returns the services of the selected groups of one namespace.
func (a *Adapter) listNamespace(ctx context.Context, ns string) ([]groupedName, error) {
	allGroups := isAll(a.cfg.Groups)
	if a.cfg.Flavor == FlavorPolaris {
		// Polaris lists every group's services under DEFAULT_GROUP as "<group>__<name>", and its
		// per-group listing pages wrongly; the DEFAULT_GROUP list is the reliable one.
		raw, err := a.listGroup(ns, DefaultGroup)
		if err != nil {
			return nil, err
		}
		groups := map[string]bool{}
		for _, g := range a.cfg.Groups {
			groups[g] = true
		}
		var out []groupedName
		for _, n := range raw {
			g := groupedName{group: DefaultGroup, name: n}
			if i := strings.Index(n, "__"); i > 0 && i+2 < len(n) {
				g = groupedName{group: n[:i], name: n[i+2:]}
			}
			if allGroups || groups[g.group] {
				out = append(out, g)
			}
		}
		return out, nil
	}
	if allGroups {
		return a.console.catalog(ctx, ns)
	}
	var out []groupedName
	for _, g := range a.cfg.Groups {
		names, err := a.listGroup(ns, g)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, groupedName{group: g, name: n})
		}
	}
	return out, nil
}

// listGroup reads one group's service names over gRPC, page by page. Nacos answers grouped
// names ("<group>@@<name>"); the group prefix is dropped.
func (a *Adapter) listGroup(ns, group string) ([]string, error) {
	c, err := a.namingFor(ns)
	if err != nil {
		return nil, err
	}
	get := func(page, size uint32) (model.ServiceList, error) {
		l, err := c.GetAllServicesInfo(vo.GetAllServiceInfoParam{NameSpace: sdkNamespace(ns), GroupName: group, PageNo: page, PageSize: size})
		if err != nil {
			return l, fmt.Errorf("listing services of namespace %q group %q: %w", ns, group, err)
		}
		return l, nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(names []string) {
		for _, n := range names {
			if _, rest, ok := strings.Cut(n, "@@"); ok {
				n = rest
			}
			if n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	size := uint32(a.cfg.PageSize)
	first, err := get(1, size)
	if err != nil {
		return nil, err
	}
	if a.cfg.Flavor == FlavorPolaris && first.Count > int64(len(first.Doms)) && first.Count <= maxPolarisPage {
		// Polaris pages over a list in random order, so pages overlap and miss services: ask
		// for everything at once (its count is the namespace's, an upper bound).
		if first, err = get(1, uint32(first.Count)); err != nil {
			return nil, err
		}
	}
	add(first.Doms)
	// Stop on a short page too: Polaris reports the namespace's count for every group.
	for page := uint32(2); len(first.Doms) >= int(size) && int64(page-1)*int64(size) < first.Count; page++ {
		l, err := get(page, size)
		if err != nil {
			return nil, err
		}
		add(l.Doms)
		if len(l.Doms) < int(size) {
			break
		}
	}
	return out, nil
}

// maxPolarisPage bounds the one-page listing of a Polaris namespace.
const maxPolarisPage = 100000

func (a *Adapter) namingFor(ns string) (namingClient, error) {
	if c, ok := a.clients[ns]; ok {
		return c, nil
	}
	c, err := a.factory.naming(ns)
	if err != nil {
		return nil, err
	}
	a.clients[ns] = c
	return c, nil
}
