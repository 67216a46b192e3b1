package merge

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// member is one registry's service with a given identity.
type member struct {
	reg  string
	prio int
	key  registry.Key
	svc  *registry.Service
}

// combined is the service served for one identity (nil: none), the member services it was
// built from (to tell whether anything changed), and the duplicate report if several exist.
type combined struct {
	svc  *registry.Service
	from []*registry.Service
	dup  *DuplicateStatus
}

// combine applies the duplicate rule to the members of one identity, given in priority order.
// It never modifies a member: a merged service is new, sharing only immutable parts.
func combine(mode DuplicateMode, ident string, ms []member) combined {
	switch len(ms) {
	case 0:
		return combined{}
	case 1:
		return combined{svc: ms[0].svc, from: []*registry.Service{ms[0].svc}}
	}
	dup := &DuplicateStatus{Identity: ident, Rule: mode}
	for i, mb := range ms {
		dup.Members = append(dup.Members, DuplicateMember{
			Registry: mb.reg, Service: mb.key.String(), Instances: len(mb.svc.Instances),
			Shadowed: mode == DuplicatePrefer && i > 0,
		})
	}
	dup.Summary = duplicateSummary(dup)
	if mode == DuplicatePrefer {
		return combined{svc: ms[0].svc, from: []*registry.Service{ms[0].svc}, dup: dup}
	}

	base := ms[0].svc
	out := &registry.Service{
		Registry: base.Registry, Kind: base.Kind, Namespace: base.Namespace, Group: base.Group,
		Name: base.Name, Version: base.Version,
	}
	from := make([]*registry.Service, len(ms))
	registries := map[string]bool{}
	for i, mb := range ms {
		from[i] = mb.svc
		registries[mb.reg] = true
	}
	portFrom := map[string]int{} // port name -> index in out.Ports
	portReg := map[string]string{}
	for _, mb := range ms {
		for _, p := range mb.svc.Ports {
			if j, ok := portFrom[p.Name]; ok {
				if out.Ports[j].Protocol != p.Protocol {
					dup.PortConflicts = append(dup.PortConflicts, PortConflict{
						Port: p.Name, Kept: out.Ports[j].Protocol, KeptFrom: portReg[p.Name],
						Ignored: p.Protocol, IgnoredFrom: mb.reg,
					})
				}
				continue
			}
			portFrom[p.Name], portReg[p.Name] = len(out.Ports), mb.reg
			out.Ports = append(out.Ports, p)
		}
		for k, v := range mb.svc.Labels {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			if _, ok := out.Labels[k]; !ok {
				out.Labels[k] = v
			}
		}
		out.Aliases = appendNew(out.Aliases, mb.svc.Aliases)
		out.Consumers = appendNew(out.Consumers, mb.svc.Consumers)
	}

	// Instances: all of them, labelled by registry when several registries contribute. An
	// endpoint already served (dual registration) is skipped; an ID already taken by another
	// endpoint gets the registry appended, since instance IDs must stay unique in a service.
	labelled := len(registries) > 1
	endpoints, ids := map[string]bool{}, map[string]bool{}
	for _, mb := range ms {
		for _, in := range mb.svc.Instances {
			ep := endpointKey(in)
			if endpoints[ep] {
				dup.SharedEndpoints++
				continue
			}
			endpoints[ep] = true
			if labelled {
				l := make(map[string]string, len(in.Labels)+1)
				maps.Copy(l, in.Labels)
				l[RegistryLabel] = mb.reg
				in.Labels = l
			}
			if ids[in.ID] {
				in.ID = uniqueID(ids, in.ID+"@"+mb.reg)
			}
			ids[in.ID] = true
			out.Instances = append(out.Instances, in)
		}
	}
	out.SortInstances()
	return combined{svc: out, from: from, dup: dup}
}

// endpointKey identifies where an instance listens: its address and port numbers, whatever the
// registry names the ports.
func endpointKey(in registry.Instance) string {
	nums := make([]int, 0, len(in.Ports))
	for _, n := range in.Ports {
		nums = append(nums, int(n))
	}
	slices.Sort(nums)
	var b strings.Builder
	b.WriteString(in.Address)
	for _, n := range nums {
		b.WriteByte('|')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func uniqueID(taken map[string]bool, id string) string {
	if !taken[id] {
		return id
	}
	for i := 2; ; i++ {
		if c := id + "#" + strconv.Itoa(i); !taken[c] {
			return c
		}
	}
}

func appendNew(dst, src []string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// equalService reports whether two services (instances sorted) have the same content. A nil
// and an empty map or slice are equal.
func equalService(a, b *registry.Service) bool {
	if a.Registry != b.Registry || a.Kind != b.Kind || a.Namespace != b.Namespace || a.Group != b.Group ||
		a.Name != b.Name || a.Version != b.Version ||
		!slices.Equal(a.Ports, b.Ports) || !maps.Equal(a.Labels, b.Labels) ||
		!slices.Equal(a.Aliases, b.Aliases) || !slices.Equal(a.Consumers, b.Consumers) ||
		len(a.Instances) != len(b.Instances) {
		return false
	}
	for i := range a.Instances {
		x, y := &a.Instances[i], &b.Instances[i]
		if x.ID != y.ID || x.Address != y.Address || x.Weight != y.Weight || x.Healthy != y.Healthy ||
			x.Enabled != y.Enabled || x.Locality != y.Locality ||
			!maps.Equal(x.Ports, y.Ports) || !maps.Equal(x.Labels, y.Labels) {
			return false
		}
	}
	return true
}
