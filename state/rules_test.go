package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// sampleRules is a set of rules using every field of the rule model, in name/kind order.
func sampleRules() []*registry.Rule {
	return []*registry.Rule{
		{Registry: "zk", Kind: registry.RuleCondition, Name: "com.example.Greeter:1.0.0:g1", Source: "/dubbo/config/dubbo/com.example.Greeter:1.0.0:g1.condition-router",
			ConfigVersion: "v3.1", Scope: registry.ScopeService, Service: &registry.RuleService{Interface: "com.example.Greeter", Version: "1.0.0", Group: "g1"},
			Enabled: true, Force: true, Runtime: true, Priority: 3,
			Condition: &registry.ConditionRule{Conditions: []string{"method=greet => region=eu"},
				MultiDestination: []registry.MultiDestCondition{{Priority: 1, From: "application=shop", Ratio: 20, Force: true, TrafficDisable: true,
					To: []registry.Destination{{Match: "region=a", Weight: 80}, {Match: "region=b", Weight: 20}}}}},
			Raw: "configVersion: v3.1\n..."},
		{Registry: "zk", Kind: registry.RuleMesh, Name: "shop", Scope: registry.ScopeApplication, Application: "shop", Enabled: true, Runtime: true,
			Raw: "kind: VirtualService\n---\nkind: DestinationRule\n"},
		{Registry: "zk", Kind: registry.RuleConfigurator, Name: "shop", Scope: registry.ScopeApplication, Application: "shop", Enabled: false,
			Configurator: &registry.ConfiguratorRule{Configs: 2}, Raw: "configs: [...]"},
		{Registry: "zk", Kind: registry.RuleTag, Name: "shop", ConfigVersion: "v3.0", Scope: registry.ScopeApplication, Application: "shop", Enabled: true,
			Tag: &registry.TagRule{Tags: []registry.Tag{
				{Name: "gray", Match: []registry.ParamMatch{{Key: "env", Value: registry.StringMatch{Exact: "gray"}}, {Key: "v", Value: registry.StringMatch{NoEmpty: true}}}},
				{Name: "canary", Addresses: []string{"10.0.0.1:20880"}},
			}}, Raw: "tags: ..."},
	}
}

// TestRoundTripRules: rules are written in order and read back equal; a registry whose rules are
// unknown (nil) stays nil, one known to have none stays empty.
func TestRoundTripRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	regs := sample()
	rules := sampleRules()
	regs[0].Rules = []*registry.Rule{rules[3], rules[1], rules[0], rules[2]} // any order
	regs[1].Rules = []*registry.Rule{}
	if _, err := write(path, regs, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want[0].Rules = sampleRules()
	want[1].Rules = []*registry.Rule{}
	if !reflect.DeepEqual(got.Registries, want) {
		t.Errorf("round trip differs:\ngot  %s\nwant %s", dump(got.Registries), dump(want))
	}
	if got.Registries[2].Rules != nil {
		t.Error("unknown rules came back as known")
	}
}

// TestLoadVersion1 reads a file written before rules existed: it loads, with rules unknown.
func TestLoadVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.json.gz")
	v1 := `{"format":"mcp-bridge-state","version":1,"written":"2026-01-01T00:00:00Z","registries":[` +
		`{"name":"zk","type":"zookeeper","services":[{"kind":"application","name":"a","ports":[{"name":"http","protocol":"http"}],"instances":[]}]}]}`
	if err := os.WriteFile(path, gz(t, v1), 0o600); err != nil {
		t.Fatal(err)
	}
	saved, err := Load(path)
	if err != nil {
		t.Fatalf("a version 1 file no longer loads: %v", err)
	}
	if len(saved.Registries) != 1 || len(saved.Registries[0].Services) != 1 || saved.Registries[0].Rules != nil {
		t.Errorf("loaded %s", dump(saved.Registries))
	}
}

func TestLoadRejectsBadRules(t *testing.T) {
	head := `{"format":"mcp-bridge-state","version":2,"written":"2026-01-01T00:00:00Z","registries":[{"name":"zk","type":"zookeeper","services":[],"rules":[`
	okRule := `{"kind":"tag-router","name":"shop","scope":"application","application":"shop","enabled":true,"tag":{"tags":[]},"raw":"tags: []"}`
	for _, c := range []struct{ name, rules, want string }{
		{"null rule", `null`, "a null rule"},
		{"rule twice", okRule + "," + okRule, "appears twice"},
		{"invalid rule", `{"kind":"tag-router","name":"shop","scope":"galaxy","tag":{"tags":[]}}`, `unknown scope "galaxy"`},
		{"rule without body", `{"kind":"condition-router","name":"a","scope":"application","application":"a"}`, "missing"},
		{"rules not a list", `]}]}` + "\n", ""}, // replaced below
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := head + c.rules + `]}]}`
			if c.want == "" {
				doc = strings.Replace(head, `"rules":[`, `"rules":{}`, 1) + `}]}`
				c.want = "rules"
			}
			path := filepath.Join(t.TempDir(), "state.json.gz")
			if err := os.WriteFile(path, gz(t, doc), 0o600); err != nil {
				t.Fatal(err)
			}
			saved, err := Load(path)
			if !errors.Is(err, ErrCorrupt) || saved != nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load = %v; want ErrCorrupt mentioning %q and nothing loaded", err, c.want)
			}
		})
	}
}

// TestRestoreAllRules: RestoreAll hands each configured registry its rules, and the load status
// counts them.
func TestRestoreAllRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	regs := sample()
	regs[0].Rules = sampleRules()
	if _, err := write(path, regs, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{File: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]*registry.Rule{}
	s.RestoreAll([]Ref{{Name: "zk", Type: "zookeeper"}, {Name: "nacos", Type: "nacos"}}, func(r Registry) { got[r.Name] = r.Rules })
	if len(got["zk"]) != 4 || got["nacos"] != nil {
		t.Errorf("restored rules %v", got)
	}
	if r := s.Status().Load.Restored; len(r) != 2 || r[0].Rules != 4 {
		t.Errorf("load status %+v", r)
	}
}
