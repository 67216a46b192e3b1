package rules

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// AnnotationRules lists, on generated resources, the rules they were made from.
const AnnotationRules = "mcp-bridge.io/rules"

// maxStale bounds the subsets kept per service after their last instance left (see entry.sticky).
const maxStale = 16

// subsetDef is one DestinationRule subset and where it came from.
type subsetDef struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Live is the number of its instances that are endpoints now.
	Live  int    `json:"instances"`
	From  string `json:"from"`
	Stale bool   `json:"stale,omitempty"` // kept after its last instance left
	order int
}

// policy is what one service's rules made.
type policy struct {
	dr, vs    *istio.Resource
	invalid   []istio.Invalid
	warnings  []istio.Warning
	subsets   []subsetDef
	http, tcp []string // routes, described
	notes     []string
}

func (p *policy) empty() bool { return p == nil || p.dr == nil && p.vs == nil && len(p.invalid) == 0 }

func (p *policy) same(o *policy) bool {
	if p.empty() || o.empty() {
		return p.empty() == o.empty()
	}
	return p.dr == o.dr && p.vs == o.vs && slices.Equal(p.invalid, o.invalid) && slices.Equal(p.warnings, o.warnings)
}

// instance is a live instance's labels as its endpoint carries them.
type instance map[string]string

func (e *Engine) liveInstances(s *registry.Service, marked []string) []instance {
	var out []instance
	for _, in := range s.Instances {
		if !in.Healthy && !e.opts.IncludeUnhealthy || !in.Enabled && !e.opts.IncludeDisabled || in.Weight == 0 && !e.opts.IncludeZeroWeight {
			continue
		}
		l := make(instance, len(in.Labels)+len(marked))
		for k, v := range in.Labels {
			l[k] = translate.SanitizeLabelValue(v)
		}
		for _, k := range marked {
			if _, ok := l[k]; !ok {
				l[k] = l[labelAlias(k)] // as mark gives it: the alias's value, else ""
			}
		}
		out = append(out, l)
	}
	return out
}

func count(insts []instance, sel map[string]string) int {
	n := 0
	for _, in := range insts {
		ok := true
		for k, v := range sel {
			if got, has := in[k]; !has || got != v {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// values lists the distinct non-empty values of key among live instances.
func values(insts []instance, key string) []string {
	set := map[string]bool{}
	for _, in := range insts {
		if v := in[key]; v != "" {
			set[v] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// slug makes a part of a subset name: lower-case letters, digits and '-', at most max
// characters. A value that had to change (or be cut) gets a hash of the original, so two values
// never share a name and a name never depends on which other values exist.
func slug(s string, max int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if out == s && len(out) <= max && out != "" {
		return out
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:3])
	if len(out) > max-7 {
		out = strings.TrimRight(out[:max-7], "-")
	}
	if out == "" {
		return "x" + h
	}
	return out + "-" + h
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

type weighted struct {
	subset string
	weight int32
}

// build makes one service's policy.
func (e *Engine) build(en *entry, src string, sh *translate.ServiceHosts, old *policy) *policy {
	p := &policy{}
	if len(en.rules) == 0 {
		return p
	}
	if sh == nil || len(sh.Hosts) == 0 {
		p.notes = append(p.notes, "the service has no ServiceEntry (see /debug/invalid): no policy is generated")
		return p
	}
	host := strings.ToLower(sh.Hosts[0])
	var httpPorts, tcpPorts []translate.HostPort
	for _, pt := range sh.Ports {
		switch pt.Protocol {
		case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
			httpPorts = append(httpPorts, pt)
		case "TCP":
			tcpPorts = append(tcpPorts, pt)
		default:
			p.notes = append(p.notes, fmt.Sprintf("port %s (%d) is %s: the engine generates no route for it", pt.Name, pt.Number, pt.Protocol))
		}
	}
	marked := en.marked
	if marked == nil {
		marked = e.markOf(en)
	}
	insts := e.liveInstances(marked, en.keys)
	var subsets []subsetDef
	addSubset := func(name string, labels map[string]string, from string) {
		if i := slices.IndexFunc(subsets, func(d subsetDef) bool { return d.Name == name }); i >= 0 {
			if !maps.Equal(subsets[i].Labels, labels) {
				p.notes = append(p.notes, fmt.Sprintf("subset name %q of %s is already used by %s: not generated", name, from, subsets[i].From))
			}
			return
		}
		subsets = append(subsets, subsetDef{Name: name, Labels: labels, Live: count(insts, labels), From: from})
	}
	liveOf := func(name string) int {
		for _, d := range subsets {
			if d.Name == name {
				return d.Live
			}
		}
		return 0
	}

	if c := en.win[SectionSubsets]; c != nil {
		for _, k := range c.Subsets.Labels {
			for _, v := range values(insts, k) {
				addSubset(slug(k, 28)+"-"+slug(v, 34), map[string]string{k: v}, SectionSubsets)
			}
			addSubset(slug(k, 28)+"--base", map[string]string{k: ""}, SectionSubsets)
		}
	}
	lane, tag, canary := en.win[SectionLanes], en.win[SectionTagRouting], en.win[SectionCanary]
	baseline := map[string]string{} // what traffic outside lanes and tags may reach
	laneBase := map[string]string{}
	if lane != nil {
		baseline[lane.Lanes.Label], laneBase[lane.Lanes.Label] = "", ""
	}
	if tag != nil && !tag.TagRouting.UntaggedToAll {
		baseline[tag.TagRouting.Label] = ""
	}
	var laneVals, tagVals []string
	if lane != nil {
		laneVals = values(insts, lane.Lanes.Label)
		for _, v := range laneVals {
			addSubset("lane-"+slug(v, 50), map[string]string{lane.Lanes.Label: v}, SectionLanes)
		}
	}
	if tag != nil {
		tagVals = values(insts, tag.TagRouting.Label)
		if lane != nil {
			// A lane instance serves its lane only, whatever its tag.
			tagVals = slices.DeleteFunc(tagVals, func(v string) bool {
				return count(insts, union(laneBase, map[string]string{tag.TagRouting.Label: v})) == 0
			})
		}
		for _, v := range tagVals {
			addSubset("tag-"+slug(v, 50), union(laneBase, map[string]string{tag.TagRouting.Label: v}), SectionTagRouting)
		}
	}
	cond := en.win[SectionConditions]
	if cond != nil {
		for _, ns := range cond.Conditions.Subsets {
			addSubset(ns.Name, ns.Labels, SectionConditions)
		}
		for _, r := range cond.Conditions.Routes {
			for _, d := range r.Dests {
				if d.Subset == "" {
					addSubset(condSubsetName(d.Labels), d.Labels, SectionConditions)
				}
			}
		}
	}
	var def []weighted
	switch {
	case canary != nil:
		cn := canary.Canary
		addSubset("stable", union(cn.Stable, baseline), SectionCanary)
		addSubset("canary", union(cn.Canary, baseline), SectionCanary)
		s, c := liveOf("stable"), liveOf("canary")
		switch {
		case c == 0:
			def = []weighted{{"stable", 0}}
			p.notes = append(p.notes, fmt.Sprintf("canary (rule %s): the canary subset has no live instance, so all its traffic goes to stable (it comes back when instances return)", canary.Name))
		case s == 0:
			def = []weighted{{"canary", 0}}
			p.notes = append(p.notes, fmt.Sprintf("canary (rule %s): the stable subset has no live instance, so all traffic goes to canary", canary.Name))
		case cn.Weight == 0:
			def = []weighted{{"stable", 0}}
		case cn.Weight == 100:
			def = []weighted{{"canary", 0}}
		default:
			def = []weighted{{"stable", int32(100 - cn.Weight)}, {"canary", int32(cn.Weight)}}
		}
	case len(baseline) > 0:
		addSubset("baseline", maps.Clone(baseline), "baseline")
		def = []weighted{{"baseline", 0}}
	default:
		def = []weighted{{"", 0}}
	}
	p.subsets = e.stick(en, subsets)

	res := en.win[SectionResilience]
	routing := canary != nil || tag != nil || lane != nil || cond != nil
	vs := &networking.VirtualService{Hosts: slices.Clone(sh.Hosts)}
	for i, h := range vs.Hosts {
		vs.Hosts[i] = strings.ToLower(h)
	}
	dest := func(subset string) *networking.Destination {
		return &networking.Destination{Host: host, Subset: subset}
	}
	if len(httpPorts) > 0 && (routing || res != nil && (res.Resilience.Timeout != "" || res.Resilience.Retries != nil)) {
		vs.Http = e.httpRoutes(p, lane, tag, canary, cond, res, laneVals, tagVals, def, liveOf, dest)
	}
	if len(tcpPorts) > 0 && (canary != nil || len(baseline) > 0) {
		var rds []*networking.RouteDestination
		for _, w := range def {
			rds = append(rds, &networking.RouteDestination{Destination: dest(w.subset), Weight: w.weight})
		}
		vs.Tcp = []*networking.TCPRoute{{Route: rds}}
		p.tcp = append(p.tcp, "all -> "+describe(def))
	}
	if len(tcpPorts) > 0 {
		names := make([]string, len(tcpPorts))
		for i, pt := range tcpPorts {
			names[i] = fmt.Sprintf("%s (%d)", pt.Name, pt.Number)
		}
		on := "on TCP port " + strings.Join(names, ", ") + " only subset weights apply (Istio sees Dubbo's binary protocol as plain TCP; use Triple, gRPC or HTTP, or a proxyless client)"
		if lane != nil {
			p.notes = append(p.notes, fmt.Sprintf("lanes (rule %s): %s: lane requests there reach the baseline", lane.Name, on))
		}
		if tag != nil {
			p.notes = append(p.notes, fmt.Sprintf("tagRouting (rule %s): %s: tagged requests there reach untagged instances", tag.Name, on))
		}
		if canary != nil && (len(canary.Canary.Match) > 0 || canary.Canary.MirrorPercent > 0) {
			p.notes = append(p.notes, fmt.Sprintf("canary (rule %s): %s: matches and mirror are not applied there, the weights are", canary.Name, on))
		}
		if cond != nil && len(cond.Conditions.Routes) > 0 {
			p.notes = append(p.notes, fmt.Sprintf("conditions (rule %s): %s: its request routes are not applied there", cond.Name, on))
		}
		if res != nil && (res.Resilience.Timeout != "" || res.Resilience.Retries != nil) {
			p.notes = append(p.notes, fmt.Sprintf("resilience (rule %s): %s: timeout and retries are not applied there", res.Name, on))
		}
	}

	names := make([]string, len(en.rules))
	for i, c := range en.rules {
		names[i] = c.Name
	}
	labels := map[string]string{translate.LabelRegistry: translate.SanitizeLabelValue(en.in.Registry)}
	ann := map[string]string{translate.AnnotationSource: src, AnnotationRules: strings.Join(names, ",")}
	emit := func(coll string, spec proto.Message, prev *istio.Resource) *istio.Resource {
		r, err := istio.NewResource(coll, sh.Namespace, host, labels, ann, spec)
		if err != nil {
			p.invalid = append(p.invalid, istio.Invalid{Collection: coll, Namespace: sh.Namespace, Name: host, Source: src,
				Reason: istio.ReasonInvalidSpec, Detail: err.Error()})
			return nil
		}
		r.Source = src
		if prev != nil && prev.Version == r.Version {
			return prev
		}
		return r
	}
	var oldDR, oldVS *istio.Resource
	if old != nil {
		oldDR, oldVS = old.dr, old.vs
	}
	if len(vs.Http) > 0 || len(vs.Tcp) > 0 {
		p.vs = emit(istio.CollectionVirtualService, vs, oldVS)
	}
	if dr := e.destinationRule(p, en, host); dr != nil {
		p.dr = emit(istio.CollectionDestinationRule, dr, oldDR)
	}
	return p
}

// stick adds the subsets generated before whose instances are gone, marked stale, so that their
// clusters stay while no route points at them: a subset that comes back is then already known to
// every client (Istio drops unreferenced clusters, and a proxyless gRPC client fails RPCs for a
// few milliseconds when a route names a cluster it has not seen yet). At most maxStale are kept
// per service, the most recently live first.
func (e *Engine) stick(en *entry, cur []subsetDef) []subsetDef {
	if en.sticky == nil {
		en.sticky = map[string]subsetDef{}
	}
	for i := range cur {
		en.stick++
		cur[i].order = en.stick
		en.sticky[cur[i].Name] = cur[i]
	}
	var stale []subsetDef
	for name, d := range en.sticky {
		if !slices.ContainsFunc(cur, func(c subsetDef) bool { return c.Name == name }) {
			d.Stale, d.Live = true, 0
			stale = append(stale, d)
		}
	}
	slices.SortFunc(stale, func(a, b subsetDef) int { return b.order - a.order })
	for _, d := range stale[min(len(stale), maxStale):] {
		delete(en.sticky, d.Name)
	}
	out := append(cur, stale[:min(len(stale), maxStale)]...)
	slices.SortFunc(out, func(a, b subsetDef) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func describe(ws []weighted) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		name := w.subset
		if name == "" {
			name = "all instances"
		} else {
			name = "subset " + name
		}
		if w.weight > 0 {
			name += fmt.Sprintf(" %d%%", w.weight)
		}
		parts[i] = name
	}
	return strings.Join(parts, ", ")
}

// condSubsetName names the subset of a condition rule's destination after its labels.
func condSubsetName(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return "cond-" + slug(strings.Join(parts, ","), 50)
}
