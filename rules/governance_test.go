package rules

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Dubbo's own examples (apache/dubbo-website: traffic/tag-rule, condition-rule, configuration
// rule and mesh rule pages), stored as Dubbo stores them: <key><suffix> -> YAML.
var dubboDocRules = map[string]string{
	// Tag rule, v2.7 form: tags by address.
	"shop-detail.tag-router": `force: false
runtime: true
enabled: true
priority: 1
key: shop-detail
tags:
  - name: gray
    addresses: ["10.0.5.1:20880", "10.0.5.2"]
`,
	// Tag rule, v3.0 form: tags by provider parameters.
	"shop-comment.tag-router": `configVersion: v3.0
force: true
enabled: true
key: shop-comment
tags:
  - name: gray
    match:
      - key: env
        value:
          exact: gray
`,
	// Condition rule: one method to one region.
	"org.apache.dubbo.samples.CommentService.condition-router": `configVersion: v3.0
scope: service
force: true
runtime: true
enabled: true
key: org.apache.dubbo.samples.CommentService
conditions:
  - method=getComment => region=Hangzhou
`,
	// Condition rule with a deny clause.
	"shop-order.condition-router": `configVersion: v3.0
scope: application
force: false
enabled: true
key: shop-order
conditions:
  - method=deleteOrder =>
`,
	// Untranslatable: an argument value and a consumer host.
	"shop-cart.condition-router": `configVersion: v3.0
scope: application
force: false
enabled: true
key: shop-cart
conditions:
  - method=getDetail&arguments[0]=dubbo => port=20880
  - host = 10.20.153.10,10.20.153.11 =>
`,
	// Configurator: timeout and retries of one service.
	"org.apache.dubbo.samples.UserService.configurators": `configVersion: v3.0
scope: service
key: org.apache.dubbo.samples.UserService
enabled: true
configs:
  - side: consumer
    parameters:
      timeout: 2000
      retries: 3
`,
	// Mesh rule.
	"demo.MESHAPPRULE": `apiVersion: service.dubbo.apache.org/v1alpha1
kind: DestinationRule
metadata: { name: demo-route }
spec:
  host: demo
  subsets:
    - labels: { env-sign: xxx, tag1: hello }
      name: isolation
    - labels: { env-sign: yyy }
      name: testing-trunk
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
---
apiVersion: service.dubbo.apache.org/v1alpha1
kind: VirtualService
metadata: {name: demo-route}
spec:
  dubbo:
    - routedetail:
        - match:
            - sourceLabels: {trafficLabel: xxx}
          name: xxx-project
          route:
            - destination: {subset: isolation, host: demo}
        - name: testing
          route:
            - destination: {subset: testing-trunk, host: demo}
  hosts: [demo]
`,
}

func parseDubboRules(t testing.TB, m map[string]string) []*registry.Rule {
	t.Helper()
	var out []*registry.Rule
	for key, data := range m {
		r, err := dubbo.ParseRule(key, "/dubbo/config/dubbo/"+key, []byte(data))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		r.Registry = "reg"
		out = append(out, r)
	}
	registry.SortRules(out)
	return out
}

const govServices = "services:\n" +
	"  - {name: shop-detail, kind: dubbo-application, ports: [{name: tri, protocol: tri}, {name: dubbo, protocol: dubbo}], instances: [" +
	"{address: 10.0.5.1, ports: {tri: 50051, dubbo: 20880}}, {address: 10.0.5.2, ports: {tri: 50051, dubbo: 20880}}, {address: 10.0.5.3, ports: {tri: 50051, dubbo: 20880}}]}\n" +
	"  - {name: shop-comment, kind: dubbo-application, ports: [{name: tri, protocol: tri}], instances: [" +
	"{address: 10.0.6.1, ports: {tri: 50051}, labels: {env: gray}}, {address: 10.0.6.2, ports: {tri: 50051}}]}\n" +
	"  - {name: org.apache.dubbo.samples.CommentService, kind: dubbo-interface, ports: [{name: tri, protocol: tri}], instances: [" +
	"{address: 10.0.7.1, ports: {tri: 50051}, labels: {region: Hangzhou}}, {address: 10.0.7.2, ports: {tri: 50051}, labels: {region: Beijing}}]}\n" +
	"  - {name: shop-order, kind: dubbo-application, ports: [{name: tri, protocol: tri}], instances: [{address: 10.0.8.1, ports: {tri: 50051}}]}\n" +
	"  - {name: shop-cart, kind: dubbo-application, ports: [{name: tri, protocol: tri}], instances: [{address: 10.0.9.1, ports: {tri: 50051}}]}\n" +
	"  - {name: org.apache.dubbo.samples.UserService, kind: dubbo-interface, ports: [{name: dubbo, protocol: dubbo}, {name: tri, protocol: tri}], instances: [{address: 10.0.10.1, ports: {dubbo: 20880, tri: 50051}}]}\n" +
	"  - {name: demo, kind: dubbo-application, ports: [{name: tri, protocol: tri}], instances: [" +
	"{address: 10.0.11.1, ports: {tri: 50051}, labels: {env-sign: xxx, tag1: hello}}, {address: 10.0.11.2, ports: {tri: 50051}, labels: {env-sign: yyy}}]}\n"

// TestGovernanceGolden translates Dubbo's documented rule examples (through Dubbo's parser) and
// compares the Istio policy and the report with testdata/golden/governance.txt.
func TestGovernanceGolden(t *testing.T) {
	w := newWorld(t, "")
	p := NewProducer(w.e)
	p.SetGovernanceMode(GovernanceApply)
	rs := parseDubboRules(t, dubboDocRules)
	p.setGovernance(rs, false)
	res := w.step(services(t, govServices))
	checkNoWeightZero(t, res)
	var b strings.Builder
	b.WriteString(w.render(res))
	b.WriteString("=== governance\n")
	st := p.GovernanceStatus("")
	j, _ := json.MarshalIndent(st, "", "  ")
	b.Write(j)
	golden.Compare(t, filepath.Join("testdata", "golden", "governance.txt"), []byte(b.String()))

	states := map[string]string{}
	for _, g := range st.Rules {
		states[g.Key] = g.State
	}
	want := map[string]string{
		"shop-detail.tag-router": GovApplied, "shop-comment.tag-router": GovApplied,
		"org.apache.dubbo.samples.CommentService.condition-router": GovApplied, "shop-order.condition-router": GovApplied,
		"shop-cart.condition-router": GovUntranslatable, "org.apache.dubbo.samples.UserService.configurators": GovApplied,
		"demo.MESHAPPRULE": GovApplied,
	}
	for k, v := range want {
		if states[k] != v {
			t.Errorf("%s: state %q, want %q", k, states[k], v)
		}
	}
}

// TestGovernanceModes: report translates and applies nothing; off does neither; a declared rule
// wins a section over a registry rule.
func TestGovernanceModes(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		declared string
		wantVS   int
		wantRule int
	}{
		{GovernanceReport, "", 0, 7},
		{GovernanceOff, "", 0, 0},
		{GovernanceApply, "", 6, 7},
		{GovernanceApply, rule("declared-tags", "  selector: {hosts: [\"shop-detail*\"]}\n  tagRouting: {label: tag, header: x-tag}"), 6, 7},
	} {
		t.Run(fmt.Sprintf("%s-%v", tc.mode, tc.declared != ""), func(t *testing.T) {
			w := newWorld(t, tc.declared)
			p := NewProducer(w.e)
			if tc.declared != "" {
				rs, _ := ParseFile("r.yaml", []byte(tc.declared))
				if err := p.SetRules(rs); err != nil {
					t.Fatal(err)
				}
			}
			p.SetGovernanceMode(tc.mode)
			p.setGovernance(parseDubboRules(t, dubboDocRules), false)
			res := w.step(services(t, govServices))
			vs := 0
			for coll, list := range res.Resources {
				if strings.HasSuffix(coll, "VirtualService") {
					vs = len(list)
				}
			}
			if vs != tc.wantVS {
				t.Errorf("%d VirtualServices, want %d", vs, tc.wantVS)
			}
			if n := len(p.GovernanceStatus("").Rules); n != tc.wantRule {
				t.Errorf("%d rules reported, want %d", n, tc.wantRule)
			}
			if tc.declared != "" {
				found := false
				for _, c := range res.Conflicts {
					if c.Winner == "declared-tags" && c.Section == SectionTagRouting {
						found = true
					}
				}
				if !found {
					t.Errorf("declared rule did not win tagRouting: %+v", res.Conflicts)
				}
			}
		})
	}
}
