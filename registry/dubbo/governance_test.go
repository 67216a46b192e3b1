package dubbo

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestRuleName(t *testing.T) {
	for _, tc := range []struct {
		key      string
		kind     registry.RuleKind
		name     string
		ok       bool
		describe string
	}{
		{"demo-provider.tag-router", registry.RuleTag, "demo-provider", true, "application tag rule"},
		{"com.foo.Bar:1.0.0:g1.condition-router", registry.RuleCondition, "com.foo.Bar:1.0.0:g1", true, "service condition rule"},
		{"com.foo.Bar::.condition-router", registry.RuleCondition, "com.foo.Bar::", true, "service key with empty parts"},
		{"demo.configurators", registry.RuleConfigurator, "demo", true, "configurators"},
		{"demo.MESHAPPRULE", registry.RuleMesh, "demo", true, "mesh rule"},
		{"dubbo.properties", "", "", false, "global configuration is no rule"},
		{".tag-router", "", "", false, "suffix alone"},
		{"demo.meshapprule", "", "", false, "suffix is case-sensitive as in Dubbo"},
	} {
		t.Run(tc.describe, func(t *testing.T) {
			kind, name, ok := RuleName(tc.key)
			if kind != tc.kind || name != tc.name || ok != tc.ok {
				t.Errorf("RuleName(%q) = %q, %q, %v; want %q, %q, %v", tc.key, kind, name, ok, tc.kind, tc.name, tc.ok)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		data string
		want *registry.Rule // Raw and Source are checked apart
	}{
		{
			name: "tag rule v3.0 with match and addresses",
			key:  "shop.tag-router",
			data: `configVersion: v3.0
force: true
enabled: true
priority: 2
key: shop
tags:
  - name: gray
    match:
      - key: env
        value:
          exact: gray
      - key: zone
        value:
          prefix: cn-
  - name: canary
    addresses: ["10.0.0.1:20880", " 10.0.0.2:20880 "]
  - name: any
    match:
      - {key: version, value: {noempty: ""}}
`,
			want: &registry.Rule{Kind: registry.RuleTag, Name: "shop", ConfigVersion: "v3.0", Scope: registry.ScopeApplication,
				Application: "shop", Enabled: true, Force: true, Runtime: true, Priority: 2,
				Tag: &registry.TagRule{Tags: []registry.Tag{
					{Name: "gray", Match: []registry.ParamMatch{{Key: "env", Value: registry.StringMatch{Exact: "gray"}}, {Key: "zone", Value: registry.StringMatch{Prefix: "cn-"}}}},
					{Name: "canary", Addresses: []string{"10.0.0.1:20880", "10.0.0.2:20880"}},
					{Name: "any", Match: []registry.ParamMatch{{Key: "version", Value: registry.StringMatch{NoEmpty: true}}}},
				}}},
		},
		{
			name: "tag rule v2.7, no tags, defaults",
			key:  "shop.tag-router",
			data: "configVersion: v2.7\nruntime: false\ntags: []\n",
			want: &registry.Rule{Kind: registry.RuleTag, Name: "shop", ConfigVersion: "v2.7", Scope: registry.ScopeApplication,
				Application: "shop", Enabled: true, Runtime: false, Tag: &registry.TagRule{Tags: []registry.Tag{}}},
		},
		{
			name: "condition rule v3.0 service scope",
			key:  "com.foo.Bar:1.0.0:g1.condition-router",
			data: `configVersion: v3.0
scope: service
key: com.foo.Bar
enabled: false
conditions:
  - method=getComment => region=Hangzhou
  - "=> host != 10.0.0.3"
`,
			want: &registry.Rule{Kind: registry.RuleCondition, Name: "com.foo.Bar:1.0.0:g1", ConfigVersion: "v3.0", Scope: registry.ScopeService,
				Service: &registry.RuleService{Interface: "com.foo.Bar", Version: "1.0.0", Group: "g1"}, Enabled: false, Runtime: true,
				Condition: &registry.ConditionRule{Conditions: []string{"method=getComment => region=Hangzhou", "=> host != 10.0.0.3"}}},
		},
		{
			name: "condition rule without scope: service key inferred",
			key:  "com.foo.Bar::.condition-router",
			data: "conditions: [\"=> region=a\"]\n",
			want: &registry.Rule{Kind: registry.RuleCondition, Name: "com.foo.Bar::", Scope: registry.ScopeService,
				Service: &registry.RuleService{Interface: "com.foo.Bar"}, Enabled: true, Runtime: true,
				Condition: &registry.ConditionRule{Conditions: []string{"=> region=a"}}},
		},
		{
			name: "condition rule v3.1 multi-destination beside a string",
			key:  "shop.condition-router",
			data: `configVersion: v3.1
scope: application
force: false
conditions:
  - "method=ping => region=a"
  - priority: 10
    from:
      match: application=consumer
    to:
      - match: region=hangzhou
        weight: 20
      - match: region=beijing
        weight: "80"
      - match: region=any
    ratio: 20
    force: true
`,
			want: &registry.Rule{Kind: registry.RuleCondition, Name: "shop", ConfigVersion: "v3.1", Scope: registry.ScopeApplication,
				Application: "shop", Enabled: true, Runtime: true,
				Condition: &registry.ConditionRule{Conditions: []string{"method=ping => region=a"},
					MultiDestination: []registry.MultiDestCondition{{Priority: 10, From: "application=consumer", Ratio: 20, Force: true,
						To: []registry.Destination{{Match: "region=hangzhou", Weight: 20}, {Match: "region=beijing", Weight: 80}, {Match: "region=any", Weight: 100}}}}}},
		},
		{
			name: "configurators listed",
			key:  "shop.configurators",
			data: "configVersion: v3.0\nscope: application\nconfigs:\n  - side: provider\n    parameters: {weight: 200}\n  - side: consumer\n    parameters: {timeout: 6000}\n",
			want: &registry.Rule{Kind: registry.RuleConfigurator, Name: "shop", ConfigVersion: "v3.0", Scope: registry.ScopeApplication,
				Application: "shop", Enabled: true, Runtime: true, Configurator: &registry.ConfiguratorRule{Configs: 2}},
		},
		{
			name: "mesh rule kept raw",
			key:  "shop.MESHAPPRULE",
			data: "apiVersion: service.dubbo.apache.org/v1alpha1\nkind: DestinationRule\nmetadata: {name: shop}\n---\napiVersion: service.dubbo.apache.org/v1alpha1\nkind: VirtualService\nmetadata: {name: shop}\n",
			want: &registry.Rule{Kind: registry.RuleMesh, Name: "shop", Scope: registry.ScopeApplication, Application: "shop", Enabled: true, Runtime: true},
		},
		{name: "empty content is no rule", key: "shop.tag-router", data: " \n\t", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRule(tc.key, "/dubbo/config/dubbo/"+tc.key, []byte(tc.data))
			if err != nil {
				t.Fatalf("ParseRule: %v", err)
			}
			if tc.want == nil {
				if got != nil {
					t.Fatalf("got %+v, want no rule", got)
				}
				return
			}
			if got.Raw != tc.data || got.Source != "/dubbo/config/dubbo/"+tc.key {
				t.Errorf("Raw/Source not kept: %q, %q", got.Raw, got.Source)
			}
			got.Raw, got.Source = "", ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if got.Summary() == "" {
				t.Error("empty summary")
			}
		})
	}
}

// TestParseRuleMalformed: every malformed rule is an error naming its source and what is wrong
// (a YAML path or line), with the bad-rule reason; none is half-parsed into a rule.
func TestParseRuleMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, key, data string
		wantErr         string
	}{
		{"not YAML", "a.tag-router", "tags: [unclosed", "not YAML"},
		{"a list, not a mapping", "a.tag-router", "- a\n- b\n", "line 1: a rule is a YAML mapping"},
		{"a scalar", "a.condition-router", "hello", `not the scalar "hello"`},
		{"wrong field type", "a.tag-router", "priority: high\n", "line 1"},
		{"unknown configVersion", "a.tag-router", "configVersion: v9\ntags: []\n", `configVersion: "v9"`},
		{"unknown scope", "a.condition-router", "scope: cluster\nconditions: [\"=> a=b\"]\n", `scope: "cluster"`},
		{"application scope with service key", "com.A:1:g.condition-router", "scope: application\nconditions: [\"=> a=b\"]\n", "is a service key"},
		{"service key without interface", ":1.0:g.condition-router", "scope: service\nconditions: [\"=> a=b\"]\n", "has no interface"},
		{"service key with too many parts", "a:b:c:d.condition-router", "conditions: [\"=> a=b\"]\n", "more than interface:version:group"},
		{"tag without name", "a.tag-router", "tags:\n  - addresses: [1.2.3.4:1]\n", "tags[0].name: missing"},
		{"duplicate tag", "a.tag-router", "tags:\n  - name: x\n  - name: x\n", `tag "x" appears twice`},
		{"match without key", "a.tag-router", "tags:\n  - name: x\n    match:\n      - value: {exact: y}\n", "tags[0].match[0].key: missing"},
		{"match without form", "a.tag-router", "tags:\n  - name: x\n    match:\n      - key: k\n        value: {}\n", "tags[0].match[0].value: needs one of"},
		{"match with two forms", "a.tag-router", "tags:\n  - name: x\n    match:\n      - key: k\n        value: {exact: a, prefix: b}\n", "more than one of"},
		{"empty exact", "a.tag-router", "tags:\n  - name: x\n    match:\n      - key: k\n        value: {exact: \"\"}\n", "empty pattern"},
		{"empty address", "a.tag-router", "tags:\n  - name: x\n    addresses: [\"\"]\n", "tags[0].addresses[0]: empty"},
		{"no conditions", "a.condition-router", "scope: application\n", "at least one condition"},
		{"empty condition", "a.condition-router", "conditions:\n  - \"  \"\n", "conditions[0] (line 2): empty condition"},
		{"multi-destination before v3.1", "a.condition-router", "configVersion: v3.0\nconditions:\n  - from: {match: a=b}\n    to: [{match: c=d}]\n", "need configVersion v3.1"},
		{"multi-destination bad weight", "a.condition-router", "configVersion: v3.1\nconditions:\n  - from: {match: a=b}\n    to: [{match: c=d, weight: heavy}]\n", `to[0].weight: "heavy"`},
		{"multi-destination no destination", "a.condition-router", "configVersion: v3.1\nconditions:\n  - from: {match: a=b}\n", "to: no destination"},
		{"multi-destination bad ratio", "a.condition-router", "configVersion: v3.1\nconditions:\n  - from: {match: a=b}\n    to: [{match: c=d}]\n    ratio: 300\n", "ratio: 300"},
		{"condition a list", "a.condition-router", "conditions:\n  - [a, b]\n", "a condition is a string"},
		{"configurators without configs", "a.configurators", "configVersion: v3.0\n", "at least one config"},
		{"mesh rule not YAML", "a.MESHAPPRULE", "kind: [", "document 1: not YAML"},
		{"mesh rule without kind", "a.MESHAPPRULE", "kind: VirtualService\n---\nspec: {}\n", "document 2 (line 3): no kind"},
		{"mesh rule for a service key", "a:1:g.MESHAPPRULE", "kind: VirtualService\n", "per application"},
		{"too large", "a.tag-router", "tags: []\n#" + strings.Repeat("x", MaxRuleSize), "more than"},
		{"not a rule key", "dubbo.properties", "a=b", "governance rule suffix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "/dubbo/config/dubbo/" + tc.key
			rule, err := ParseRule(tc.key, src, []byte(tc.data))
			if err == nil {
				t.Fatalf("no error; got %+v", rule)
			}
			if rule != nil {
				t.Errorf("a rule came back with the error: %+v", rule)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), src+": ") {
				t.Errorf("error %q: want it to start with the source and contain %q", err, tc.wantErr)
			}
			if Reason(err) != ReasonBadRule {
				t.Errorf("reason %q, want %q", Reason(err), ReasonBadRule)
			}
		})
	}
}

// FuzzParseRule: no input panics, and whatever parses is a valid rule that keeps its text.
func FuzzParseRule(f *testing.F) {
	for _, seed := range []struct{ key, data string }{
		{"shop.tag-router", "configVersion: v3.0\ntags:\n  - name: gray\n    match:\n      - key: env\n        value: {exact: gray}\n    addresses: [1.2.3.4:20880]\n"},
		{"com.foo.Bar:1.0:g.condition-router", "configVersion: v3.0\nscope: service\nconditions: [\"method=a => region=b\"]\n"},
		{"shop.condition-router", "configVersion: v3.1\nconditions:\n  - from: {match: a=b}\n    to: [{match: c=d, weight: 80}]\n"},
		{"shop.configurators", "configs:\n  - side: provider\n"},
		{"shop.MESHAPPRULE", "kind: VirtualService\n---\nkind: DestinationRule\n"},
		{"shop.tag-router", "tags: &a [*a]\n"},
		{"x.tag-router", "- 1"},
	} {
		f.Add(seed.key, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		rule, err := ParseRule(key, "src", data)
		if err != nil || rule == nil {
			return
		}
		if verr := rule.Validate(); verr != nil {
			t.Fatalf("parsed rule is invalid: %v", verr)
		}
		if rule.Raw != string(data) {
			t.Fatal("raw text not kept")
		}
		_ = rule.Summary()
	})
}
