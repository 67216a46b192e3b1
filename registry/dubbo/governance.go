package dubbo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Dubbo keeps governance rules in its configuration center (ZooKeeper
// /dubbo/config/<group>/<key><suffix>, Nacos dataId <key><suffix> in group "dubbo"), one YAML
// document per rule:
//
//	<interface>:<version>:<group>.condition-router   service scope (empty parts kept: "com.foo.Bar::")
//	<application>.condition-router                    application scope
//	<application>.tag-router                          tag rules are per application
//	<key>.configurators                               dynamic configuration (override) rules
//	<application>.MESHAPPRULE                         Dubbo mesh rules (VirtualService/DestinationRule dialect)

// ReasonBadRule is the Reject reason of a governance rule that cannot be parsed.
const ReasonBadRule = "bad-rule"

// MaxRuleSize bounds a rule's text; Dubbo's own rules are a few KB. A larger node is rejected
// rather than held in memory, the state file and status pages.
const MaxRuleSize = 1 << 20

// ruleSuffixes maps configuration key suffixes to rule kinds.
var ruleSuffixes = []struct {
	suffix string
	kind   registry.RuleKind
}{
	{".tag-router", registry.RuleTag},
	{".condition-router", registry.RuleCondition},
	{".configurators", registry.RuleConfigurator},
	{".MESHAPPRULE", registry.RuleMesh},
}

// RuleName splits a configuration key ("com.foo.Bar:1.0:g.condition-router") into the rule's
// kind and name; ok is false for a key that is no governance rule (dubbo.properties, ...).
func RuleName(configKey string) (kind registry.RuleKind, name string, ok bool) {
	for _, s := range ruleSuffixes {
		if n, found := strings.CutSuffix(configKey, s.suffix); found && n != "" {
			return s.kind, n, true
		}
	}
	return "", "", false
}

// ruleDoc is a rule's YAML, every kind's fields together (Dubbo reads them into one map too).
// Unknown fields are ignored, as Dubbo ignores them.
type ruleDoc struct {
	ConfigVersion string      `yaml:"configVersion"`
	Scope         string      `yaml:"scope"`
	Key           string      `yaml:"key"`
	Enabled       *bool       `yaml:"enabled"`
	Force         bool        `yaml:"force"`
	Runtime       *bool       `yaml:"runtime"`
	Priority      int         `yaml:"priority"`
	Tags          []tagDoc    `yaml:"tags"`
	Conditions    []yaml.Node `yaml:"conditions"`
	Configs       []yaml.Node `yaml:"configs"`
}

type tagDoc struct {
	Name      string          `yaml:"name"`
	Match     []paramMatchDoc `yaml:"match"`
	Addresses []string        `yaml:"addresses"`
}

type paramMatchDoc struct {
	Key   string         `yaml:"key"`
	Value stringMatchDoc `yaml:"value"`
}

type stringMatchDoc struct {
	Exact    *string `yaml:"exact"`
	Prefix   *string `yaml:"prefix"`
	Regex    *string `yaml:"regex"`
	Wildcard *string `yaml:"wildcard"`
	Empty    *string `yaml:"empty"`
	NoEmpty  *string `yaml:"noempty"`
}

type multiDestDoc struct {
	Priority       int               `yaml:"priority"`
	From           map[string]string `yaml:"from"`
	To             []destDoc         `yaml:"to"`
	TrafficDisable bool              `yaml:"trafficDisable"`
	Force          bool              `yaml:"force"`
	Ratio          int               `yaml:"ratio"`
}

type destDoc struct {
	Match  string `yaml:"match"`
	Weight string `yaml:"weight"` // Dubbo reads it as a string map value: 80 and "80" both occur
}

// ParseRule parses the rule stored under configKey (its name in the configuration center) at
// source (a znode path, a Nacos group/dataId; it prefixes errors). Empty content is no rule
// (Dubbo treats an emptied rule as removed): rule and err are both nil. Errors name the source
// and, for YAML, the line; Reason(err) is ReasonBadRule.
func ParseRule(configKey, source string, data []byte) (*registry.Rule, error) {
	kind, name, ok := RuleName(configKey)
	if !ok {
		return nil, reasonf(ReasonBadRule, "%s: %q does not end in a governance rule suffix", source, configKey)
	}
	rule, err := parseRule(kind, name, data)
	if err != nil {
		return nil, reasonf(ReasonBadRule, "%s: %w", source, err)
	}
	if rule != nil {
		rule.Source = source
	}
	return rule, nil
}

func parseRule(kind registry.RuleKind, name string, data []byte) (*registry.Rule, error) {
	if len(data) > MaxRuleSize {
		return nil, fmt.Errorf("rule is %d bytes, more than the %d a rule may have", len(data), MaxRuleSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	rule := &registry.Rule{Kind: kind, Name: name, Raw: string(data), Enabled: true, Runtime: true}
	if kind == registry.RuleMesh {
		return rule, parseMesh(rule, data)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: a rule is a YAML mapping (configVersion, scope, ...), not %s", line(&root), nodeKind(&root))
	}
	var doc ruleDoc
	if err := root.Decode(&doc); err != nil {
		return nil, err
	}
	switch doc.ConfigVersion {
	case "", "v2.7", "v3.0", "v3.1":
	default:
		return nil, fmt.Errorf("configVersion: %q is not one of v2.7, v3.0, v3.1", doc.ConfigVersion)
	}
	rule.ConfigVersion = doc.ConfigVersion
	rule.Force, rule.Priority = doc.Force, doc.Priority
	if doc.Enabled != nil {
		rule.Enabled = *doc.Enabled
	}
	if doc.Runtime != nil {
		rule.Runtime = *doc.Runtime
	}
	if err := setScope(rule, doc.Scope); err != nil {
		return nil, err
	}
	var err error
	switch kind {
	case registry.RuleTag:
		rule.Tag, err = tagRule(doc.Tags)
	case registry.RuleCondition:
		rule.Condition, err = conditionRule(doc.ConfigVersion, doc.Conditions)
	case registry.RuleConfigurator:
		if len(doc.Configs) == 0 {
			return nil, errors.New("configs: a configurator rule needs at least one config")
		}
		rule.Configurator = &registry.ConfiguratorRule{Configs: len(doc.Configs)}
	}
	if err != nil {
		return nil, err
	}
	return rule, rule.Validate()
}

// setScope sets the rule's target from its name. An absent scope follows the name: a service key
// has colons ("com.foo.Bar::"), an application name none; tag and mesh rules are per application.
func setScope(rule *registry.Rule, scope string) error {
	switch scope {
	case "":
		scope = string(registry.ScopeApplication)
		if rule.Kind != registry.RuleTag && strings.Contains(rule.Name, ":") {
			scope = string(registry.ScopeService)
		}
	case string(registry.ScopeService), string(registry.ScopeApplication):
	default:
		return fmt.Errorf("scope: %q is not service or application", scope)
	}
	rule.Scope = registry.RuleScope(scope)
	if rule.Scope == registry.ScopeApplication {
		if strings.Contains(rule.Name, ":") {
			return fmt.Errorf("scope: application, but %q is a service key (interface:version:group)", rule.Name)
		}
		rule.Application = rule.Name
		return nil
	}
	svc, err := ParseServiceKey(rule.Name)
	if err != nil {
		return err
	}
	rule.Service = &svc
	return nil
}

// ParseServiceKey splits Dubbo's colon-separated service key, interface:version:group (a part
// may be empty, trailing ones may be absent), as URL.getColonSeparatedKey writes it.
func ParseServiceKey(key string) (registry.RuleService, error) {
	parts := strings.Split(key, ":")
	if len(parts) > 3 {
		return registry.RuleService{}, fmt.Errorf("service key %q has more than interface:version:group", key)
	}
	parts = append(parts, "", "")
	if parts[0] == "" {
		return registry.RuleService{}, fmt.Errorf("service key %q has no interface", key)
	}
	return registry.RuleService{Interface: parts[0], Version: parts[1], Group: parts[2]}, nil
}

func tagRule(tags []tagDoc) (*registry.TagRule, error) {
	out := &registry.TagRule{Tags: make([]registry.Tag, 0, len(tags))}
	for i, t := range tags {
		if t.Name == "" {
			return nil, fmt.Errorf("tags[%d].name: missing", i)
		}
		tag := registry.Tag{Name: t.Name}
		for j, a := range t.Addresses {
			if strings.TrimSpace(a) == "" {
				return nil, fmt.Errorf("tags[%d].addresses[%d]: empty", i, j)
			}
			tag.Addresses = append(tag.Addresses, strings.TrimSpace(a))
		}
		for j, m := range t.Match {
			if m.Key == "" {
				return nil, fmt.Errorf("tags[%d].match[%d].key: missing", i, j)
			}
			sm, err := stringMatch(m.Value)
			if err != nil {
				return nil, fmt.Errorf("tags[%d].match[%d].value: %w", i, j, err)
			}
			tag.Match = append(tag.Match, registry.ParamMatch{Key: m.Key, Value: sm})
		}
		out.Tags = append(out.Tags, tag)
	}
	return out, nil
}

func stringMatch(v stringMatchDoc) (registry.StringMatch, error) {
	var sm registry.StringMatch
	n := 0
	set := func(p *string, dst *string) {
		if p != nil {
			*dst = *p
			n++
		}
	}
	set(v.Exact, &sm.Exact)
	set(v.Prefix, &sm.Prefix)
	set(v.Regex, &sm.Regex)
	set(v.Wildcard, &sm.Wildcard)
	if v.Empty != nil {
		sm.Empty = true
		n++
	}
	if v.NoEmpty != nil {
		sm.NoEmpty = true
		n++
	}
	switch {
	case n == 0:
		return sm, errors.New("needs one of exact, prefix, regex, wildcard, empty, noempty")
	case n > 1:
		return sm, errors.New("has more than one of exact, prefix, regex, wildcard, empty, noempty")
	case v.Exact != nil && sm.Exact == "", v.Prefix != nil && sm.Prefix == "", v.Regex != nil && sm.Regex == "", v.Wildcard != nil && sm.Wildcard == "":
		return sm, errors.New("has an empty pattern (use empty: to match an absent parameter)")
	}
	return sm, nil
}

// conditionRule reads conditions: strings "<match> => <filter>" up to v3.0; v3.1 also allows
// multi-destination mappings {priority, from: {match}, to: [{match, weight}], ...}.
func conditionRule(version string, conds []yaml.Node) (*registry.ConditionRule, error) {
	if len(conds) == 0 {
		return nil, errors.New("conditions: a condition rule needs at least one condition")
	}
	out := &registry.ConditionRule{}
	for i := range conds {
		c := &conds[i]
		switch {
		case c.Kind == yaml.ScalarNode && c.Tag != "!!null":
			s := strings.TrimSpace(c.Value)
			if s == "" || s == "=>" {
				return nil, fmt.Errorf("conditions[%d] (line %d): empty condition", i, c.Line)
			}
			out.Conditions = append(out.Conditions, s)
		case c.Kind == yaml.MappingNode && version == "v3.1":
			md, err := multiDest(c)
			if err != nil {
				return nil, fmt.Errorf("conditions[%d] (line %d): %w", i, c.Line, err)
			}
			out.MultiDestination = append(out.MultiDestination, md)
		case c.Kind == yaml.MappingNode:
			return nil, fmt.Errorf("conditions[%d] (line %d): multi-destination conditions need configVersion v3.1, the rule has %q", i, c.Line, version)
		default:
			return nil, fmt.Errorf("conditions[%d] (line %d): a condition is a string \"<match> => <filter>\", not %s", i, c.Line, nodeKind(c))
		}
	}
	return out, nil
}

func multiDest(n *yaml.Node) (registry.MultiDestCondition, error) {
	var d multiDestDoc
	if err := n.Decode(&d); err != nil {
		return registry.MultiDestCondition{}, err
	}
	md := registry.MultiDestCondition{Priority: d.Priority, From: strings.TrimSpace(d.From["match"]),
		TrafficDisable: d.TrafficDisable, Force: d.Force, Ratio: d.Ratio}
	if d.Ratio < 0 || d.Ratio > 100 {
		return md, fmt.Errorf("ratio: %d is not a percentage 0-100", d.Ratio)
	}
	if len(d.To) == 0 && !d.TrafficDisable {
		return md, errors.New("to: no destination (and trafficDisable is not set)")
	}
	for j, t := range d.To {
		w := 100 // Dubbo's default weight
		if t.Weight != "" {
			var err error
			if w, err = strconv.Atoi(strings.TrimSpace(t.Weight)); err != nil || w < 0 {
				return md, fmt.Errorf("to[%d].weight: %q is not a non-negative integer", j, t.Weight)
			}
		}
		md.To = append(md.To, registry.Destination{Match: strings.TrimSpace(t.Match), Weight: w})
	}
	return md, nil
}

// parseMesh keeps a mesh rule raw after checking each document is a YAML mapping with a kind.
func parseMesh(rule *registry.Rule, data []byte) error {
	rule.Scope, rule.Application = registry.ScopeApplication, rule.Name
	if strings.Contains(rule.Name, ":") {
		return fmt.Errorf("mesh rules are per application, %q is a service key", rule.Name)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("document %d: not YAML: %w", docs+1, err)
		}
		docs++
		if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			return fmt.Errorf("document %d (line %d): a mesh rule document is a YAML mapping, not %s", docs, line(&n), nodeKind(&n))
		}
		var head struct {
			Kind string `yaml:"kind"`
		}
		if err := n.Decode(&head); err != nil || head.Kind == "" {
			return fmt.Errorf("document %d (line %d): no kind (VirtualService, DestinationRule)", docs, line(&n))
		}
	}
	return rule.Validate()
}

func line(n *yaml.Node) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0].Line
	}
	return n.Line
}

func nodeKind(n *yaml.Node) string {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", truncateValue(n.Value))
	case yaml.AliasNode:
		return "an alias"
	}
	return "empty"
}

func truncateValue(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "..."
	}
	return s
}
