package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Governance rule states on /debug/governance and in metrics.
const (
	GovApplied        = "applied"        // translated; its engine rule is in force
	GovWouldApply     = "would-apply"    // translated, not applied: governance.mode is report
	GovUntranslatable = "untranslatable" // some clause has no Istio equivalent: nothing of it applies
	GovDisabled       = "disabled"       // enabled: false in the registry
	GovNothing        = "nothing-to-do"  // nothing for Istio (a configurator of weight/disabled only, which adapters apply)
)

// GovProblem is one clause of a registry rule that Istio cannot express, and why.
type GovProblem struct {
	Clause string `json:"clause"`
	Reason string `json:"reason"`
}

// GovRule is one registry governance rule as the engine sees it.
type GovRule struct {
	Registry string            `json:"registry"`
	Kind     registry.RuleKind `json:"kind"`
	Key      string            `json:"key"`
	Source   string            `json:"source,omitempty"`
	Summary  string            `json:"summary"`
	State    string            `json:"state"`
	Rule     string            `json:"engineRule,omitempty"` // the engine rule made of it
	Problems []GovProblem      `json:"problems,omitempty"`
	Notes    []string          `json:"notes,omitempty"`
	Services []string          `json:"services,omitempty"` // services it selects (filled by the producer)
	rule     *registry.Rule    `json:"-"`
}

// TranslateGovernance turns registry rules into engine rules. Every rule gets a GovRule; only
// rules translated whole get an engine rule, and only in apply mode.
func TranslateGovernance(rs []*registry.Rule, mode string) ([]Rule, []GovRule) {
	if mode == GovernanceOff {
		return nil, nil
	}
	var out []Rule
	govs := make([]GovRule, 0, len(rs))
	for _, r := range rs {
		g := GovRule{Registry: r.Registry, Kind: r.Kind, Key: r.Key().String(), Source: r.Source, Summary: r.Summary(), rule: r}
		spec, probs, notes := translateOne(r)
		g.Problems, g.Notes = probs, notes
		name := govRuleName(r)
		switch {
		case !r.Enabled:
			g.State = GovDisabled
		case len(probs) > 0:
			g.State = GovUntranslatable
		case spec == nil:
			g.State = GovNothing
		default:
			rule := Rule{Name: name, Origin: "registry " + r.Registry + " " + cmpOr(r.Source, g.Key), Spec: *spec}
			if _, ps := compile(rule); len(ps) > 0 {
				g.State = GovUntranslatable
				for _, p := range ps {
					g.Problems = append(g.Problems, GovProblem{p.path, p.msg})
				}
				break
			}
			g.Rule = name
			g.State = GovWouldApply
			if mode == GovernanceApply {
				g.State = GovApplied
				out = append(out, rule)
			}
		}
		govs = append(govs, g)
	}
	return out, govs
}

// govRuleName is the engine rule's name: a DNS subdomain naming the registry, kind and key.
func govRuleName(r *registry.Rule) string {
	return "registry." + slug(r.Registry, 30) + "." + slug(string(r.Kind), 20) + "." + slug(r.Name, 60)
}

func govSpec(r *registry.Rule) *GovSpec {
	return &GovSpec{Registry: r.Registry, Kind: r.Kind, Key: r.Key().String(), Application: r.Application, Service: r.Service}
}

// translateOne makes the engine spec of one rule; nil without problems: nothing for Istio.
func translateOne(r *registry.Rule) (*Spec, []GovProblem, []string) {
	spec := &Spec{Priority: r.Priority, Governance: govSpec(r)}
	switch r.Kind {
	case registry.RuleTag:
		var probs []GovProblem
		for i, t := range r.Tag.Tags {
			if !validLabelValue(t.Name) {
				probs = append(probs, GovProblem{fmt.Sprintf("tags[%d]", i), fmt.Sprintf("tag %q is not a valid Kubernetes label value (it becomes the instance label %s)", t.Name, GovTagLabel)})
			}
			for j, a := range t.Addresses {
				if err := checkAddress(a); err != nil {
					probs = append(probs, GovProblem{fmt.Sprintf("tags[%d].addresses[%d]", i, j), err.Error()})
				}
			}
			spec.Governance.Tags = append(spec.Governance.Tags, TagAssign{Name: t.Name, Addresses: t.Addresses, Match: t.Match})
		}
		spec.TagRouting = &TagRouting{Label: GovTagLabel, Header: GovTagHeader, ForceHeader: GovForceTagHeader, Force: r.Force}
		return spec, probs, nil
	case registry.RuleCondition:
		routes, probs := conditionRoutes(r)
		spec.Conditions = &Conditions{Routes: routes}
		return spec, probs, nil
	case registry.RuleConfigurator:
		return configuratorSpec(r, spec)
	case registry.RuleMesh:
		return meshSpec(r, spec)
	}
	return nil, []GovProblem{{"", fmt.Sprintf("kind %q is not translated", r.Kind)}}, nil
}

// configuratorDoc is the part of a Dubbo dynamic configuration rule the engine reads.
type configuratorDoc struct {
	Configs []struct {
		Side              string            `yaml:"side"`
		Addresses         []string          `yaml:"addresses"`
		ProviderAddresses []string          `yaml:"providerAddresses"`
		Services          []string          `yaml:"services"`
		Applications      []string          `yaml:"applications"`
		Enabled           *bool             `yaml:"enabled"`
		Parameters        map[string]string `yaml:"parameters"`
		Match             yaml.Node         `yaml:"match"`
	} `yaml:"configs"`
}

// retryOn is what Dubbo's failover cluster retries: transport failures and timeouts, never an
// application error.
const retryOn = "connect-failure,refused-stream,unavailable,cancelled,deadline-exceeded,reset"

// configuratorSpec: timeout and retries of a service-scoped configurator become the route's
// timeout and retries; weight and disabled are left to the adapters, which already apply them
// to instances; anything else is a problem.
func configuratorSpec(r *registry.Rule, spec *Spec) (*Spec, []GovProblem, []string) {
	var doc configuratorDoc
	if err := yaml.Unmarshal([]byte(r.Raw), &doc); err != nil {
		return nil, []GovProblem{{"", "not YAML: " + err.Error()}}, nil
	}
	var probs []GovProblem
	var notes []string
	res := &Resilience{}
	for i, c := range doc.Configs {
		at := fmt.Sprintf("configs[%d]", i)
		if c.Enabled != nil && !*c.Enabled {
			continue
		}
		scoped := false
		for _, a := range c.Addresses {
			if a != "0.0.0.0" && a != "*" {
				scoped = true
			}
		}
		if scoped || len(c.ProviderAddresses) > 0 || len(c.Services) > 0 || len(c.Applications) > 0 || c.Match.Kind != 0 {
			probs = append(probs, GovProblem{at, "limited to some consumers or providers (addresses, providerAddresses, services, applications, match): Istio routes apply to every caller of the service"})
			continue
		}
		for _, k := range sortedKeys(c.Parameters) {
			v := c.Parameters[k]
			switch k {
			case "weight", "disabled":
				notes = append(notes, fmt.Sprintf("%s.parameters.%s: applied to instances by the registry adapter", at, k))
			case "timeout":
				ms, err := strconv.Atoi(v)
				if err != nil || ms <= 0 {
					probs = append(probs, GovProblem{at + ".parameters.timeout", fmt.Sprintf("%q is not a positive number of milliseconds", v)})
					continue
				}
				if r.Scope != registry.ScopeService {
					probs = append(probs, GovProblem{at + ".parameters.timeout", "an application-scoped timeout is not translated: route timeouts are set where scoped to a service"})
					continue
				}
				res.Timeout = fmt.Sprintf("%dms", ms)
			case "retries":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					probs = append(probs, GovProblem{at + ".parameters.retries", fmt.Sprintf("%q is not a non-negative count", v)})
					continue
				}
				if r.Scope != registry.ScopeService {
					probs = append(probs, GovProblem{at + ".parameters.retries", "application-scoped retries are not translated: route retries are set where scoped to a service"})
					continue
				}
				res.Retries = &Retries{Attempts: int32(n), RetryOn: retryOn}
			default:
				probs = append(probs, GovProblem{at + ".parameters." + k, "no Istio equivalent is translated"})
			}
		}
	}
	if res.Timeout == "" && res.Retries == nil {
		if len(probs) > 0 {
			return spec, probs, notes
		}
		return nil, nil, notes
	}
	spec.Resilience = res
	return spec, probs, notes
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// condDestLabelsValid checks a destination's labels as a subset selector.
func condDestLabelsValid(labels map[string]string) error {
	for k, v := range labels {
		if !istio.ValidLabelKey(k) || !istio.ValidLabelValue(v) {
			return fmt.Errorf("label %q: %q is not a valid label key and value", k, v)
		}
	}
	return nil
}

func validLabelKeyName(k string) bool { return istio.ValidLabelKey(k) && !strings.Contains(k, "..") }
