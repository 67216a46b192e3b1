package registry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Governance rules are what a registry holds besides services that steers traffic between them:
// Dubbo's tag and condition routers, configurators and mesh rules. They travel beside services
// (Sink.ReplaceRules, UpsertRules, DeleteRules) with the same protection, as the registry holds
// them: this model says what a rule is, not what Istio resource it may become (a rules engine
// translates them later). Nothing here is applied to instances.

// RuleKind is the kind of a governance rule. Its value is the suffix Dubbo gives the rule's
// configuration key (without the dot), so a kind reads as it is stored.
type RuleKind string

const (
	// RuleTag is a Dubbo tag router: requests carrying a tag go to the instances the tag selects.
	RuleTag RuleKind = "tag-router"
	// RuleCondition is a Dubbo condition router: "<match> => <filter>" rules on consumer and
	// provider attributes.
	RuleCondition RuleKind = "condition-router"
	// RuleConfigurator is a Dubbo dynamic configuration (override) rule. Adapters already apply
	// what they can of them to instances; the rule is listed as the registry holds it.
	RuleConfigurator RuleKind = "configurators"
	// RuleMesh is a Dubbo mesh rule (its own VirtualService/DestinationRule dialect), kept raw.
	RuleMesh RuleKind = "MESHAPPRULE"
)

// RuleKinds lists every kind, in a fixed order.
var RuleKinds = []RuleKind{RuleTag, RuleCondition, RuleConfigurator, RuleMesh}

// RuleScope is what a rule applies to: one Dubbo service (interface:version:group) or every
// service of one application.
type RuleScope string

const (
	ScopeService     RuleScope = "service"
	ScopeApplication RuleScope = "application"
)

// RuleKey identifies a rule within one registry: its kind and its key as the registry names it.
type RuleKey struct {
	Kind RuleKind `json:"kind" yaml:"kind"`
	// Name is the rule's configuration key: "interface:version:group" (empty parts kept, as
	// Dubbo writes them: "com.example.Greeter::") for a service, the application name otherwise.
	Name string `json:"name" yaml:"name"`
}

// String renders the key as Dubbo names the rule's configuration: <name>.<kind>.
func (k RuleKey) String() string { return k.Name + "." + string(k.Kind) }

// Rule is one governance rule as one registry holds it. A rule is immutable once sent.
type Rule struct {
	// Registry is the configured name of the registry that holds the rule; the merge layer sets
	// it from the sink the rule arrived on.
	Registry string   `json:"registry" yaml:"registry"`
	Kind     RuleKind `json:"kind" yaml:"kind"`
	// Name is the rule's configuration key (see RuleKey.Name).
	Name string `json:"name" yaml:"name"`
	// Source is where the registry holds the rule (a znode path, a Nacos group/dataId), for
	// people; it never contains credentials.
	Source string `json:"source,omitempty" yaml:"source,omitempty"`
	// ConfigVersion is the rule format's version as written ("v2.7", "v3.0", "v3.1").
	ConfigVersion string    `json:"configVersion,omitempty" yaml:"configVersion,omitempty"`
	Scope         RuleScope `json:"scope" yaml:"scope"`
	// Service is the target of a service-scoped rule, from Name; nil for an application scope.
	Service *RuleService `json:"service,omitempty" yaml:"service,omitempty"`
	// Application is the target of an application-scoped rule, from Name.
	Application string `json:"application,omitempty" yaml:"application,omitempty"`
	// Enabled, Force, Runtime and Priority are the rule's header fields as Dubbo defines them
	// (enabled and runtime default to true, force to false, priority to 0).
	Enabled  bool `json:"enabled" yaml:"enabled"`
	Force    bool `json:"force" yaml:"force"`
	Runtime  bool `json:"runtime" yaml:"runtime"`
	Priority int  `json:"priority" yaml:"priority"`
	// Exactly one of the following matches Kind, except for RuleMesh, which has only Raw.
	Tag          *TagRule          `json:"tag,omitempty" yaml:"tag,omitempty"`
	Condition    *ConditionRule    `json:"condition,omitempty" yaml:"condition,omitempty"`
	Configurator *ConfiguratorRule `json:"configurator,omitempty" yaml:"configurator,omitempty"`
	// Raw is the rule's text exactly as stored, for translators that need more than the model
	// keeps and for mesh rules, which are kept only raw.
	Raw string `json:"raw" yaml:"raw"`
}

// RuleService is a Dubbo service as a rule key names it.
type RuleService struct {
	Interface string `json:"interface" yaml:"interface"`
	Version   string `json:"version,omitempty" yaml:"version,omitempty"`
	Group     string `json:"group,omitempty" yaml:"group,omitempty"`
}

// TagRule is a Dubbo tag router: each tag selects instances by their parameters (match) or by
// address.
type TagRule struct {
	Tags []Tag `json:"tags" yaml:"tags"`
}

// Tag is one tag of a tag rule. An instance belongs to the tag if every match condition holds on
// its parameters, or if its address is listed.
type Tag struct {
	Name      string       `json:"name" yaml:"name"`
	Match     []ParamMatch `json:"match,omitempty" yaml:"match,omitempty"`
	Addresses []string     `json:"addresses,omitempty" yaml:"addresses,omitempty"`
}

// ParamMatch is one condition on an instance parameter (label).
type ParamMatch struct {
	Key   string      `json:"key" yaml:"key"`
	Value StringMatch `json:"value" yaml:"value"`
}

// StringMatch is Dubbo's string condition; exactly one form is set. Empty and NoEmpty are
// presence checks, whose value Dubbo ignores.
type StringMatch struct {
	Exact    string `json:"exact,omitempty" yaml:"exact,omitempty"`
	Prefix   string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
	Regex    string `json:"regex,omitempty" yaml:"regex,omitempty"`
	Wildcard string `json:"wildcard,omitempty" yaml:"wildcard,omitempty"`
	Empty    bool   `json:"empty,omitempty" yaml:"empty,omitempty"`
	NoEmpty  bool   `json:"noempty,omitempty" yaml:"noempty,omitempty"`
}

// String renders the condition as "exact:v", "prefix:v", "regex:v", "wildcard:v", "empty",
// "noempty".
func (m StringMatch) String() string {
	switch {
	case m.Exact != "":
		return "exact:" + m.Exact
	case m.Prefix != "":
		return "prefix:" + m.Prefix
	case m.Regex != "":
		return "regex:" + m.Regex
	case m.Wildcard != "":
		return "wildcard:" + m.Wildcard
	case m.Empty:
		return "empty"
	case m.NoEmpty:
		return "noempty"
	}
	return ""
}

// ConditionRule is a Dubbo condition router. Before v3.1 each condition is one string
// "<match> => <filter>"; v3.1 conditions may instead send a share of traffic to several
// destinations (Destinations), kept structured but not interpreted.
type ConditionRule struct {
	// Conditions are the v2.7/v3.0 rules (and v3.1 string entries) exactly as written.
	Conditions []string `json:"conditions,omitempty" yaml:"conditions,omitempty"`
	// MultiDestination are the v3.1 structured entries, in order.
	MultiDestination []MultiDestCondition `json:"multiDestination,omitempty" yaml:"multiDestination,omitempty"`
}

// MultiDestCondition is a v3.1 condition: requests matching From (a Dubbo match expression) go
// to the destinations To by weight; Ratio, Force and TrafficDisable are Dubbo's fields as written.
type MultiDestCondition struct {
	Priority       int           `json:"priority,omitempty" yaml:"priority,omitempty"`
	From           string        `json:"from,omitempty" yaml:"from,omitempty"`
	To             []Destination `json:"to,omitempty" yaml:"to,omitempty"`
	TrafficDisable bool          `json:"trafficDisable,omitempty" yaml:"trafficDisable,omitempty"`
	Force          bool          `json:"force,omitempty" yaml:"force,omitempty"`
	Ratio          int           `json:"ratio,omitempty" yaml:"ratio,omitempty"`
}

// Destination is one target of a v3.1 condition: a Dubbo match expression and its weight.
type Destination struct {
	Match  string `json:"match" yaml:"match"`
	Weight int    `json:"weight" yaml:"weight"`
}

// ConfiguratorRule summarises a Dubbo dynamic configuration rule; Rule.Raw has the whole text.
type ConfiguratorRule struct {
	// Configs counts the rule's config entries.
	Configs int `json:"configs" yaml:"configs"`
}

// Key returns the rule's identity within its registry.
func (r *Rule) Key() RuleKey { return RuleKey{Kind: r.Kind, Name: r.Name} }

// Validate reports what makes a rule unusable as a whole; adapters call it before sending and
// reject the rule instead. It checks the model's invariants, not the rule's expressions.
func (r *Rule) Validate() error {
	if !slices.Contains(RuleKinds, r.Kind) {
		return fmt.Errorf("rule %q: unknown kind %q", r.Name, r.Kind)
	}
	if r.Name == "" {
		return fmt.Errorf("%s rule has no key", r.Kind)
	}
	switch r.Scope {
	case ScopeService:
		if r.Service == nil || r.Service.Interface == "" {
			return fmt.Errorf("rule %s: service scope without an interface", r.Key())
		}
	case ScopeApplication:
		if r.Application == "" {
			return fmt.Errorf("rule %s: application scope without an application", r.Key())
		}
	default:
		return fmt.Errorf("rule %s: unknown scope %q", r.Key(), r.Scope)
	}
	want := map[RuleKind]bool{RuleTag: r.Tag != nil, RuleCondition: r.Condition != nil, RuleConfigurator: r.Configurator != nil}
	for k, set := range want {
		if set != (k == r.Kind) {
			return fmt.Errorf("rule %s: the %s body is set on a %s rule, or missing", r.Key(), k, r.Kind)
		}
	}
	if r.Tag != nil {
		seen := map[string]bool{}
		for i, t := range r.Tag.Tags {
			if t.Name == "" {
				return fmt.Errorf("rule %s: tags[%d] has no name", r.Key(), i)
			}
			if seen[t.Name] {
				return fmt.Errorf("rule %s: tag %q appears twice", r.Key(), t.Name)
			}
			seen[t.Name] = true
		}
	}
	return nil
}

// Summary is one line for status pages: what the rule does, in short.
func (r *Rule) Summary() string {
	var b strings.Builder
	if r.ConfigVersion != "" {
		b.WriteString(r.ConfigVersion + " ")
	}
	b.WriteString(string(r.Scope))
	if !r.Enabled {
		b.WriteString(", disabled")
	}
	if r.Force {
		b.WriteString(", force")
	}
	if r.Runtime {
		b.WriteString(", runtime")
	}
	if r.Priority != 0 {
		b.WriteString(", priority " + strconv.Itoa(r.Priority))
	}
	switch {
	case r.Tag != nil:
		names := make([]string, len(r.Tag.Tags))
		for i, t := range r.Tag.Tags {
			names[i] = t.Name
		}
		fmt.Fprintf(&b, ": tags %s", strings.Join(names, ", "))
	case r.Condition != nil:
		fmt.Fprintf(&b, ": %s", strings.Join(r.Condition.Conditions, "; "))
		if n := len(r.Condition.MultiDestination); n > 0 {
			if len(r.Condition.Conditions) > 0 {
				b.WriteString(";")
			}
			fmt.Fprintf(&b, " %d multi-destination condition(s)", n)
		}
	case r.Configurator != nil:
		fmt.Fprintf(&b, ": %d config(s)", r.Configurator.Configs)
	default:
		fmt.Fprintf(&b, ": %d bytes", len(r.Raw))
	}
	const maxSummary = 300
	if s := b.String(); len(s) > maxSummary {
		return strings.ToValidUTF8(s[:maxSummary], "") + "..."
	}
	return b.String()
}

// SortRules orders rules by name, kind and registry, so equal sets compare and print equal.
func SortRules(rules []*Rule) {
	slices.SortFunc(rules, func(a, b *Rule) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Registry, b.Registry)
	})
}
