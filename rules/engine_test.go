package rules

import (
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// TestOnlyChangedServicesRegenerated: one instance's change regenerates only its service's
// policy; everything else keeps its pointer, and a push with no change returns the same slices.
func TestOnlyChangedServicesRegenerated(t *testing.T) {
	w := newWorld(t, rule("canary", "  canary: {stable: {version: v1}, canary: {version: v2}, weight: 10}"))
	doc := func(v2healthy string) string {
		return "services:\n" +
			svc("a", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", "version: v1"), inst("10.0.0.2", "grpc: 9000", "version: v2")) +
			svc("b", "application", grpcPort, inst("10.0.0.3", "grpc: 9000", "version: v1"), inst("10.0.0.4", "grpc: 9000", "version: v2", "healthy: "+v2healthy))
	}
	ss := services(t, doc("true"))
	r1 := w.step(ss)
	vs1 := r1.Resources[istio.CollectionVirtualService]
	if len(vs1) != 2 {
		t.Fatalf("want 2 VirtualServices, got %d", len(vs1))
	}
	// Same snapshot again: nothing changes, the same slices come back.
	r2 := w.step(ss)
	if r2.Changed || &r2.Resources[istio.CollectionVirtualService][0] != &vs1[0] {
		t.Errorf("an unchanged push made new output (changed=%v)", r2.Changed)
	}
	// b's canary goes unhealthy: only b's VirtualService changes; a's keeps its pointer.
	ss2 := services(t, doc("false"))
	ss2[0] = ss[0] // a is unchanged: the snapshot keeps its pointer
	r3 := w.step(ss2)
	vs3 := r3.Resources[istio.CollectionVirtualService]
	if !r3.Changed || vs3[0] != vs1[0] {
		t.Errorf("a's VirtualService was regenerated (changed=%v)", r3.Changed)
	}
	if vs3[1] == vs1[1] || vs3[1].Version == vs1[1].Version {
		t.Errorf("b's VirtualService did not change")
	}
	// The DestinationRules did not change at all (subsets are the same): same slice.
	if &r3.Resources[istio.CollectionDestinationRule][0] != &r1.Resources[istio.CollectionDestinationRule][0] {
		t.Errorf("DestinationRules were rebuilt though none changed")
	}
}

func TestPrepareDoesNotMutate(t *testing.T) {
	w := newWorld(t, rule("lanes", "  lanes: {}"))
	ss := services(t, "services:\n"+svc("a", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", ""), inst("10.0.0.2", "grpc: 9000", "lane: f1")))
	out := w.e.Prepare(ss)
	if _, ok := ss[0].Instances[0].Labels["lane"]; ok {
		t.Fatal("Prepare modified its input")
	}
	if v, ok := out[0].Instances[0].Labels["lane"]; !ok || v != "" {
		t.Errorf("instance without a lane not marked: %v", out[0].Instances[0].Labels)
	}
	if out[0].Instances[1].Labels["lane"] != "f1" {
		t.Errorf("lane instance changed: %v", out[0].Instances[1].Labels)
	}
	if again := w.e.Prepare(ss); again[0] != out[0] {
		t.Error("an unchanged service got a new pointer")
	}
}

// TestPrecedence: priority, then specificity, then name decide; every loser is a conflict.
func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name, rules, winner, why string
	}{
		{"priority", rule("zz-high", "  priority: 10\n  lanes: {}") + rule("aa-exact", "  selector: {hosts: [a.reg]}\n  lanes: {}"), "zz-high", "priority 10 > 0"},
		{"specificity", rule("zz-exact", "  selector: {hosts: [a.reg]}\n  lanes: {}") + rule("aa-glob", "  selector: {hosts: [\"*.reg\"]}\n  lanes: {}"), "zz-exact", "specificity 8 > 2"},
		{"name", rule("bb", "  lanes: {}") + rule("aa", "  lanes: {}"), "aa", "name aa < bb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.rules)
			res := w.step(services(t, "services:\n"+svc("a", "application", grpcPort, inst("10.0.0.1", "grpc: 9000", ""))))
			if len(res.Conflicts) != 1 || res.Conflicts[0].Winner != tc.winner || res.Conflicts[0].Why != tc.why || res.Conflicts[0].Section != SectionLanes {
				t.Errorf("conflicts %+v, want %s winning lanes (%s)", res.Conflicts, tc.winner, tc.why)
			}
		})
	}
}

// TestParseFileErrors: every broken rule file is refused whole, with its file, line and reason.
func TestParseFileErrors(t *testing.T) {
	good := rule("good", "  lanes: {}")
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", good + rule("bad", "  canary: {stable: {v: a}, canary: {v: b}, wieght: 10}"), `line 11: unknown field "wieght" (valid here: canary, match, mirrorPercent, stable, weight)`},
		{"api version", "apiVersion: v1\nkind: TrafficRule\nmetadata: {name: x}\nspec: {lanes: {}}\n", `line 1: apiVersion: "v1", want`},
		{"weight", good + rule("bad", "  canary:\n    stable: {v: a}\n    canary: {v: b}\n    weight: 120"), "line 14: spec.canary.weight: 120 is over 100"},
		{"modulo", good + rule("bad", "  canary:\n    stable: {v: a}\n    canary: {v: b}\n    match:\n    - modulo: \"uid % 7 < 3\""), "line 15: spec.canary.match[0].modulo: modulo"},
		{"duplicate", good + good, `metadata.name: "good" is also defined at line 1`},
		{"no section", rule("empty", "  priority: 1"), "the rule has no policy section"},
		{"bad name", rule("Bad_Name", "  lanes: {}"), `line 3: metadata.name: "Bad_Name" is not a DNS-1123 subdomain`},
		{"syntax", "apiVersion: [\n", "YAML syntax"},
		{"wrong type", rule("bad", "  priority: high\n  lanes: {}"), "line 5: cannot unmarshal"},
		{"lane mode", rule("bad", "  lanes: {mode: sometimes}"), `spec.lanes.mode: "sometimes" is not one of permissive, strict`},
		{"header case", rule("bad", "  tagRouting: {header: X-Tag}"), `spec.tagRouting.header: "X-Tag" is not a lower-case header name`},
		{"hash", rule("bad", "  resilience: {loadBalancer: {consistentHash: {header: a, sourceIP: true}}}"), "give exactly one of header, cookie, sourceIP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := ParseFile("x.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", rs)
			}
			if !strings.Contains(err.Error(), "rule file x.yaml") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name the file and contain %q", err, tc.want)
			}
		})
	}
}

// TestInlineConfig: the configuration's inline rules validate with field paths and become rules.
func TestInlineConfig(t *testing.T) {
	c := Config{Inline: []InlineRule{{Name: "ok", Spec: Spec{Lanes: &Lanes{}}}, {Name: "bad", Spec: Spec{Canary: &Canary{Weight: 101, Stable: map[string]string{"v": "1"}, Canary: map[string]string{"v": "2"}}}}}}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "inline[1].canary.weight: 101 is over 100") {
		t.Fatalf("Validate: %v", err)
	}
	c.Inline = c.Inline[:1]
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if rs := c.InlineRules(); len(rs) != 1 || rs[0].Origin != "config rules.inline[0]" {
		t.Errorf("InlineRules = %+v", rs)
	}
}

// TestTagRoutingDubboRegistryLabel: the ZooKeeper, Nacos and Consul adapters register Dubbo's tag
// parameter dubbo.tag as the label dubbo-tag (registry/dubbo.Labels); the default tag rule
// (label dubbo.tag) must route by it. Before, such instances were marked dubbo.tag: "" (untagged):
// no tag subset, and untagged requests reached the tagged instances through baseline.
func TestTagRoutingDubboRegistryLabel(t *testing.T) {
	labels := dubbo.Labels(map[string]string{"dubbo.tag": "gray", "application": "greeter"})
	if labels["dubbo-tag"] != "gray" {
		t.Fatalf("registry/dubbo.Labels no longer renames dubbo.tag to dubbo-tag (%v): revisit labelAlias", labels)
	}
	w := newWorld(t, rule("tags", "  tagRouting: {}"))
	ss := services(t, "services:\n"+svc("greeter", "dubbo-application", triDubbo,
		inst("10.0.1.1", "dubbo: 20880, tri: 50051", ""),
		inst("10.0.1.2", "dubbo: 20880, tri: 50051", "dubbo-tag: gray")))
	prepared := w.e.Prepare(ss)
	for i, want := range []string{"", "gray"} {
		if got, ok := prepared[0].Instances[i].Labels["dubbo.tag"]; !ok || got != want {
			t.Errorf("instance %d: dubbo.tag %q (present %v), want %q", i, got, ok, want)
		}
	}
	out := w.render(w.step(ss))
	for _, want := range []string{
		"tag-gray map[dubbo.tag:gray]: 1 live instances",
		"baseline map[dubbo.tag:]: 1 live instances",
		"dubbo-tag: gray -> subset tag-gray",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy lacks %q:\n%s", want, out)
		}
	}
}
