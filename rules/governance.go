package rules

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Registry governance rules (Dubbo tag and condition routers, configurators, mesh rules, as the
// registries hold them: merge.Snapshot.Rules) become engine rules here, and through the engine
// the same DestinationRules and VirtualServices as declared rules: one policy per service, one
// precedence order. A registry rule is translated whole or not at all: a rule with any clause
// Istio cannot express makes no engine rule and is reported, clause by clause, with the reason
// (/debug/governance, metrics, explain). docs/rules.md#registry-governance-rules documents it.

// Governance modes.
const (
	GovernanceOff    = "off"    // registry rules are not read into policy nor reported
	GovernanceReport = "report" // translated and reported, not applied (the default)
	GovernanceApply  = "apply"  // translated and applied
)

// GovernanceConfig is the `governance:` block of the configuration.
type GovernanceConfig struct {
	// Mode is off, report or apply; empty means report. Report is the default because applying
	// changes traffic for every mesh client of the rules' services the moment the bridge starts
	// reading them: an operator first sees on /debug/governance what would be applied (and what
	// cannot be), then opts in.
	Mode string `yaml:"mode"`
}

// Validate checks the mode.
func (c GovernanceConfig) Validate() error {
	switch c.Mode {
	case "", GovernanceOff, GovernanceReport, GovernanceApply:
		return nil
	}
	return fmt.Errorf("governance.mode: %q is not one of off, report, apply", c.Mode)
}

// Effective is the mode with the default filled in.
func (c GovernanceConfig) Effective() string { return cmpOr(c.Mode, GovernanceReport) }

// The instance label and request headers Dubbo's tag routing uses in the mesh: the Dubbo adapters
// put a provider's dubbo.tag parameter in the label dubbo-tag (registry/dubbo.Labels), and
// Triple carries the attachments dubbo.tag / dubbo.force.tag as these headers.
const (
	GovTagLabel       = "dubbo-tag"
	GovTagHeader      = "dubbo-tag"
	GovForceTagHeader = "dubbo-force-tag"
)

// denyStatus is what a Dubbo condition rule with an empty filter (a deny rule) answers: HTTP 403,
// which gRPC clients see as PERMISSION_DENIED. A deny is the rule's intent, not an outage: 503
// (UNAVAILABLE) would be retried by gRPC retry policies and Istio's retryOn, and Dubbo itself
// reports a forbidden call (FORBIDDEN_EXCEPTION), not a missing provider.
const denyStatus = 403

// GovSpec says which registry rule an engine rule was made from and what it selects.
type GovSpec struct {
	Registry string
	Kind     registry.RuleKind
	Key      string // the rule's configuration key, <name>.<kind>
	// Application (application scope) or Service (service scope) is what the rule selects.
	Application string
	Service     *registry.RuleService
	// Tags assign tags to instances by address or parameters (Dubbo tag rules).
	Tags []TagAssign
}

// TagAssign is one tag of a Dubbo tag rule: instances at one of Addresses, or whose parameters
// all Match, carry the tag.
type TagAssign struct {
	Name      string
	Addresses []string
	Match     []registry.ParamMatch
}

// Conditions are request routes made from Dubbo condition rules and mesh rules, in order, first
// match wins, before the engine's canary and default routes.
type Conditions struct {
	Routes []CondRoute
	// Subsets are named subsets a mesh rule's DestinationRule declares (name -> labels).
	Subsets []NamedSubset
}

// NamedSubset is a subset whose name is given (mesh rules), not derived from its labels.
type NamedSubset struct {
	Name   string
	Labels map[string]string
}

// CondRoute is one route: requests matching any of Match (all requests when empty) go to Dests,
// or fail with denyStatus when Deny.
type CondRoute struct {
	Clause string // where it comes from: "conditions[0]"
	Desc   string
	Match  []HTTPMatch
	Dests  []CondDest
	Deny   bool
	// Force keeps the route when no destination has a live instance: the request fails (503)
	// instead of falling through to the next route (Dubbo's force).
	Force bool
}

// HTTPMatch is one request match: all fields given must hold.
type HTTPMatch struct {
	URIRegex       string
	Headers        map[string]StringMatch
	WithoutHeaders map[string]StringMatch
	SourceLabels   map[string]string
}

// CondDest is a destination: instances with Labels (a named subset when Subset is set), by weight.
type CondDest struct {
	Labels map[string]string
	Subset string
	Weight int32
}

func (g *GovSpec) specificity() int {
	if g.Service != nil {
		return 8
	}
	return 4
}

// selects: the rule's registry, and its application (the service's app label, or a Dubbo 3
// application service of that name) or its Dubbo service (the interface service of that
// interface, version and group, or a Dubbo 3 application service that serves the interface).
func (g *GovSpec) selects(s *registry.Service) bool {
	if s.Registry != g.Registry {
		return false
	}
	if g.Service == nil {
		return s.Labels["app"] == g.Application || s.Kind == registry.KindDubboApplication && s.Name == g.Application
	}
	v := g.Service
	switch s.Kind {
	case registry.KindDubboInterface:
		return s.Name == v.Interface && s.Version == v.Version && s.Group == v.Group
	case registry.KindDubboApplication:
		return v.Version == "" && v.Group == "" && slices.Contains(s.Aliases, v.Interface)
	}
	return false
}

// markOf is the service as translate sees it: instances lacking a routed label get it empty,
// and a Dubbo tag rule's tags are set on the instances it assigns them to (the rule's tag wins
// over a tag the provider registered itself, as in Dubbo).
func (e *Engine) markOf(en *entry) *registry.Service {
	s := mark(en.in, en.keys)
	t := en.win[SectionTagRouting]
	if t == nil || t.Governance == nil || len(t.Governance.Tags) == 0 {
		return s
	}
	var c *registry.Service
	for i := range s.Instances {
		in := &s.Instances[i]
		tag := ""
		for _, ta := range t.Governance.Tags {
			if ta.holds(in) {
				tag = ta.Name
				break
			}
		}
		if tag == "" || in.Labels[GovTagLabel] == tag {
			continue
		}
		if c == nil {
			if s == en.in {
				s = s.Clone()
			}
			c = s
		}
		if c.Instances[i].Labels == nil {
			c.Instances[i].Labels = map[string]string{}
		}
		c.Instances[i].Labels[GovTagLabel] = tag
	}
	return s
}

func (t *TagAssign) holds(in *registry.Instance) bool {
	for _, a := range t.Addresses {
		if addressMatches(a, in) {
			return true
		}
	}
	if len(t.Match) == 0 {
		return false
	}
	for _, m := range t.Match {
		if !paramHolds(m, in.Labels[labelKeyOf(m.Key)]) {
			return false
		}
	}
	return true
}

// labelKeyOf is the instance label a Dubbo URL parameter becomes (registry/dubbo.Labels).
func labelKeyOf(param string) string {
	switch param {
	case "application":
		return "app"
	case "dubbo.tag":
		return GovTagLabel
	}
	return param
}

func paramHolds(m registry.ParamMatch, v string) bool {
	sm := m.Value
	switch {
	case sm.Exact != "":
		return v == sm.Exact
	case sm.Prefix != "":
		return strings.HasPrefix(v, sm.Prefix)
	case sm.Regex != "":
		re, err := regexp.Compile("^(?:" + sm.Regex + ")$")
		return err == nil && re.MatchString(v)
	case sm.Wildcard != "":
		ok, _ := path.Match(sm.Wildcard, v)
		return ok || sm.Wildcard == "*"
	case sm.Empty:
		return v == ""
	case sm.NoEmpty:
		return v != ""
	}
	return false
}

// addressMatches is Dubbo's address match: "ip", "ip:port", "ip:*", a CIDR, or an IP with '*'
// segments ("10.0.*.*"). A port must be one of the instance's ports.
func addressMatches(a string, in *registry.Instance) bool {
	host, port := a, ""
	if h, p, ok := strings.Cut(a, ":"); ok && !strings.Contains(p, ":") {
		host, port = h, p
	}
	if port != "" && port != "*" {
		n, err := strconv.ParseUint(port, 10, 32)
		if err != nil || !slices.ContainsFunc(mapValues(in.Ports), func(p uint32) bool { return uint64(p) == n }) {
			return false
		}
	}
	if pfx, err := netip.ParsePrefix(host); err == nil {
		ip, err := netip.ParseAddr(in.Address)
		return err == nil && pfx.Contains(ip)
	}
	if strings.Contains(host, "*") {
		ok, _ := path.Match(host, in.Address)
		return ok
	}
	return host == in.Address || host == "0.0.0.0"
}

func mapValues(m map[string]uint32) []uint32 {
	out := make([]uint32, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// checkAddress reports an address form addressMatches does not understand.
func checkAddress(a string) error {
	host, port := a, ""
	if h, p, ok := strings.Cut(a, ":"); ok && !strings.Contains(p, ":") {
		host, port = h, p
	}
	if port != "" && port != "*" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("address %q: port %q is not a port number", a, port)
		}
	}
	if _, err := netip.ParsePrefix(host); err == nil {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.Contains(host, "*") {
		if _, err := path.Match(host, ""); err == nil {
			return nil
		}
	}
	return fmt.Errorf("address %q is not an IP, ip:port, CIDR or IP pattern: instances are matched by address (a host name never matches)", a)
}

// validLabelValue reports whether v can be an instance label value as the engine compares them.
func validLabelValue(v string) bool { return istio.ValidLabelValue(v) }
