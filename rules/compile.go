package rules

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Defaults of the sections' optional fields.
const (
	DefaultTagLabel   = "dubbo.tag"
	DefaultTagHeader  = "dubbo-tag"
	DefaultLaneLabel  = "lane"
	DefaultLaneHeader = "x-lane"
)

// compiled is a validated rule with defaults filled in and its patterns compiled.
type compiled struct {
	Rule
	globs       []string
	hostRE      *regexp.Regexp
	specificity int
	modulos     []*Modulo // per canary match; nil where none
}

type problem struct{ path, msg string }

// compile validates a rule and fills in its defaults. Problems name the field by its path under
// the spec ("canary.weight"), or "name".
func compile(r Rule) (*compiled, []problem) {
	var ps []problem
	add := func(p, f string, a ...any) { ps = append(ps, problem{p, fmt.Sprintf(f, a...)}) }
	if !istio.IsDNSSubdomain(r.Name) {
		add("name", "%q is not a DNS-1123 subdomain (lower-case letters, digits, '-', '.')", r.Name)
	}
	c := &compiled{Rule: r}
	s := &c.Spec
	sel := s.Selector
	for i, g := range sel.Hosts {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			add(fmt.Sprintf("selector.hosts[%d]", i), "%q is not a valid glob", g)
		}
		c.globs = append(c.globs, strings.ToLower(g))
	}
	if sel.HostRegex != "" {
		re, err := regexp.Compile("^(?:" + sel.HostRegex + ")$")
		if err != nil {
			add("selector.hostRegex", "%v", err)
		}
		c.hostRE = re
	}
	for i, k := range sel.Kinds {
		switch k {
		case registry.KindApplication, registry.KindDubboInterface, registry.KindDubboApplication:
		default:
			add(fmt.Sprintf("selector.kinds[%d]", i), "%q is not one of application, dubbo-interface, dubbo-application", k)
		}
	}
	c.specificity = specificity(sel)
	if g := s.Governance; g != nil {
		c.specificity = g.specificity()
	}
	if s.Subsets == nil && s.Canary == nil && s.TagRouting == nil && s.Lanes == nil && s.Locality == nil && s.Resilience == nil && s.Conditions == nil {
		add("", "the rule has no policy section (subsets, canary, tagRouting, lanes, locality, resilience)")
	}
	if s.Subsets != nil {
		if len(s.Subsets.Labels) == 0 {
			add("subsets.labels", "give at least one instance label key")
		}
		for i, k := range s.Subsets.Labels {
			if !istio.ValidLabelKey(k) {
				add(fmt.Sprintf("subsets.labels[%d]", i), "%q is not a valid label key", k)
			}
		}
	}
	if s.Canary != nil {
		c.modulos = compileCanary(s.Canary, add)
	}
	if t := s.TagRouting; t != nil {
		t2 := *t
		t2.Label = cmpOr(t2.Label, DefaultTagLabel)
		t2.Header = cmpOr(t2.Header, DefaultTagHeader)
		s.TagRouting = &t2
		checkLabelKey("tagRouting.label", t2.Label, add)
		checkHeader("tagRouting.header", t2.Header, add)
	}
	if l := s.Lanes; l != nil {
		l2 := *l
		l2.Label = cmpOr(l2.Label, DefaultLaneLabel)
		l2.Header = cmpOr(l2.Header, DefaultLaneHeader)
		l2.Mode = cmpOr(l2.Mode, LaneModePermissive)
		s.Lanes = &l2
		checkLabelKey("lanes.label", l2.Label, add)
		checkHeader("lanes.header", l2.Header, add)
		if l2.Mode != LaneModePermissive && l2.Mode != LaneModeStrict {
			add("lanes.mode", "%q is not one of permissive, strict", l2.Mode)
		}
	}
	if l := s.Locality; l != nil {
		if len(l.Failover) == 0 && len(l.Distribute) == 0 && len(l.FailoverPriority) == 0 {
			add("locality", "give failover, distribute or failoverPriority")
		}
		if len(l.Failover) > 0 && len(l.Distribute) > 0 {
			add("locality", "failover and distribute cannot both be set (Istio allows one of them)")
		}
		for i, f := range l.Failover {
			if f.From == "" || f.To == "" || f.From == f.To {
				add(fmt.Sprintf("locality.failover[%d]", i), "from and to must be two different regions")
			}
		}
		for i, d := range l.Distribute {
			sum := uint32(0)
			for _, w := range d.To {
				sum += w
			}
			if d.From == "" || sum != 100 {
				add(fmt.Sprintf("locality.distribute[%d]", i), "needs from and weights in to summing to 100 (they sum to %d)", sum)
			}
		}
	}
	if r := s.Resilience; r != nil {
		checkDuration("resilience.timeout", r.Timeout, add)
		if rt := r.Retries; rt != nil {
			if rt.Attempts < 0 {
				add("resilience.retries.attempts", "must not be negative")
			}
			checkDuration("resilience.retries.perTryTimeout", rt.PerTryTimeout, add)
		}
		if cp := r.ConnectionPool; cp != nil {
			checkDuration("resilience.connectionPool.connectTimeout", cp.ConnectTimeout, add)
			for _, v := range []int32{cp.MaxConnections, cp.MaxPendingRequests, cp.MaxRequests, cp.MaxRequestsPerConnection, cp.MaxRetries} {
				if v < 0 {
					add("resilience.connectionPool", "limits must not be negative")
					break
				}
			}
		}
		if od := r.OutlierDetection; od != nil {
			checkDuration("resilience.outlierDetection.interval", od.Interval, add)
			checkDuration("resilience.outlierDetection.baseEjectionTime", od.BaseEjectionTime, add)
			if od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100 {
				add("resilience.outlierDetection.maxEjectionPercent", "must be 0-100")
			}
		}
		if lb := r.LoadBalancer; lb != nil {
			switch lb.Simple {
			case "", "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH":
			default:
				add("resilience.loadBalancer.simple", "%q is not one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH", lb.Simple)
			}
			if ch := lb.ConsistentHash; ch != nil {
				n := 0
				for _, set := range []bool{ch.Header != "", ch.Cookie != "", ch.SourceIP} {
					if set {
						n++
					}
				}
				if n != 1 {
					add("resilience.loadBalancer.consistentHash", "give exactly one of header, cookie, sourceIP")
				}
				if ch.Header != "" {
					checkHeader("resilience.loadBalancer.consistentHash.header", ch.Header, add)
				}
				if lb.Simple != "" {
					add("resilience.loadBalancer", "simple and consistentHash cannot both be set")
				}
			} else if lb.Simple == "" {
				add("resilience.loadBalancer", "give simple or consistentHash")
			}
		}
	}
	return c, ps
}

func compileCanary(cn *Canary, add func(p, f string, a ...any)) []*Modulo {
	if len(cn.Stable) == 0 || len(cn.Canary) == 0 {
		add("canary", "stable and canary must both select instances by labels")
	}
	if len(cn.Stable) > 0 && maps.Equal(cn.Stable, cn.Canary) {
		add("canary", "stable and canary select the same instances")
	}
	for _, m := range []map[string]string{cn.Stable, cn.Canary} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !istio.ValidLabelKey(k) || !istio.ValidLabelValue(m[k]) {
				add("canary", "label %q: %q is not a valid label key and value", k, m[k])
			}
		}
	}
	if cn.Weight > 100 {
		add("canary.weight", "%d is over 100 (a percentage)", cn.Weight)
	}
	if cn.MirrorPercent < 0 || cn.MirrorPercent > 100 {
		add("canary.mirrorPercent", "%v is not a percentage 0-100", cn.MirrorPercent)
	}
	mods := make([]*Modulo, len(cn.Match))
	for i, m := range cn.Match {
		p := fmt.Sprintf("canary.match[%d]", i)
		if len(m.Headers) == 0 && m.GRPC == nil && len(m.SourceLabels) == 0 && m.Modulo == "" {
			add(p, "an empty match would match every request; give headers, grpc, sourceLabels or modulo")
		}
		for _, h := range slices.Sorted(maps.Keys(m.Headers)) {
			checkHeader(p+".headers", h, add)
			sm := m.Headers[h]
			n := 0
			for _, set := range []bool{sm.Exact != "", sm.Prefix != "", sm.Regex != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				add(p+".headers."+h, "give exactly one of exact, prefix, regex")
			}
			if sm.Regex != "" {
				if _, err := regexp.Compile(sm.Regex); err != nil {
					add(p+".headers."+h+".regex", "%v", err)
				}
			}
		}
		if g := m.GRPC; g != nil {
			if g.Service == "" || strings.ContainsAny(g.Service, "/ ") || strings.ContainsAny(g.Method, "/ ") {
				add(p+".grpc", "service (\"pkg.Service\", required) and method must be names without '/' or spaces")
			}
		}
		if m.Modulo != "" {
			mod, err := ParseModulo(m.Modulo)
			if err != nil {
				add(p+".modulo", "%v", err)
			} else {
				mods[i] = &mod
			}
		}
	}
	return mods
}

func checkLabelKey(p, k string, add func(p, f string, a ...any)) {
	if !istio.ValidLabelKey(k) {
		add(p, "%q is not a valid label key", k)
	}
}

var headerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// checkHeader requires lower-case header names: Istio refuses upper-case ones.
func checkHeader(p, h string, add func(p, f string, a ...any)) {
	if !headerRE.MatchString(h) {
		add(p, "%q is not a lower-case header name", h)
	}
}

func checkDuration(p, d string, add func(p, f string, a ...any)) {
	if d == "" {
		return
	}
	v, err := time.ParseDuration(d)
	if err != nil || v < time.Millisecond {
		add(p, "%q is not a duration of at least 1ms", d)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// specificity scores a selector: the more precisely it names services the higher. An exact host
// (no wildcard) counts 8, labels 4, a host glob or regexp 2, kinds and registries 1 each.
func specificity(s Selector) int {
	n := 0
	exact, pattern := false, s.HostRegex != ""
	for _, g := range s.Hosts {
		if strings.ContainsAny(g, "*?[") {
			pattern = true
		} else {
			exact = true
		}
	}
	if exact {
		n += 8
	}
	if len(s.Labels) > 0 {
		n += 4
	}
	if pattern {
		n += 2
	}
	if len(s.Kinds) > 0 {
		n++
	}
	if len(s.Registries) > 0 {
		n++
	}
	return n
}

// selects reports whether the rule selects a service with these hosts.
func (c *compiled) selects(s *registry.Service, hosts []string) bool {
	if g := c.Spec.Governance; g != nil {
		return g.selects(s)
	}
	sel := c.Spec.Selector
	if len(sel.Registries) > 0 && !slices.Contains(sel.Registries, s.Registry) {
		return false
	}
	if len(sel.Kinds) > 0 && !slices.Contains(sel.Kinds, s.Kind) {
		return false
	}
	for k, v := range sel.Labels {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	if len(c.globs) > 0 && !slices.ContainsFunc(hosts, func(h string) bool {
		return slices.ContainsFunc(c.globs, func(g string) bool { return globMatch(g, h) })
	}) {
		return false
	}
	if c.hostRE != nil && !slices.ContainsFunc(hosts, c.hostRE.MatchString) {
		return false
	}
	return true
}

// globMatch is path.Match with '*' crossing dots (hosts have no '/').
func globMatch(g, h string) bool {
	if !strings.ContainsAny(g, "*?[\\") {
		return g == h // an exact host: the common case, and 50x cheaper than path.Match
	}
	ok, _ := path.Match(g, h)
	return ok
}

// precedes orders rules by precedence: declared rules before rules made from registry governance
// rules (the operator's declared intent wins a section over what the registry holds), then
// higher priority, then higher specificity, then name.
func precedes(a, b *compiled) int {
	if ga, gb := a.Governance != nil, b.Governance != nil; ga != gb {
		if ga {
			return 1
		}
		return -1
	}
	if a.Priority != b.Priority {
		return b.Priority - a.Priority
	}
	if a.specificity != b.specificity {
		return b.specificity - a.specificity
	}
	return strings.Compare(a.Name, b.Name)
}
