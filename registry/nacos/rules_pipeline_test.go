package nacos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// Rules as Dubbo's documentation writes them (Dubbo Admin publishes the same text).
const (
	commentSvc  = "org.apache.dubbo.samples.CommentService"
	condDataID  = commentSvc + ":1.0.0:.condition-router"
	govTagRule  = "configVersion: v3.0\nforce: true\nenabled: true\nkey: shop-detail\ntags:\n  - name: gray\n    match:\n      - key: env\n        value:\n          exact: gray\n"
	govCondRule = "configVersion: v3.0\nscope: service\nforce: true\nruntime: true\nenabled: true\nkey: " + commentSvc + "\nconditions:\n  - method=getComment => region=Hangzhou\n"
	govConfRule = "configVersion: v3.0\nscope: application\nkey: shop-detail\nconfigs:\n  - side: consumer\n    parameters:\n      timeout: 2000\n"
	govMeshRule = "apiVersion: service.dubbo.apache.org/v1alpha1\nkind: VirtualService\nmetadata: {name: shop-detail}\nspec:\n  hosts: [shop-detail]\n  dubbo:\n    - service:\n        - exact: " + commentSvc + "\n      routedetail:\n        - name: all\n          route:\n            - destination: {host: shop-detail, subset: v1}\n"
)

// TestPolarisGovernanceRules: Dubbo governance rules published as Nacos config (dataId
// <key><suffix>, group dubbo) on a real Polaris reach the merge layer through the real pipeline;
// they follow changes, a garbled edit is rejected with the last good version kept, a deleted
// config removes its rule, and the rules stay while the server is down and after it returns.
func TestPolarisGovernanceRules(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()
	md := map[string]string{"application": "shop-detail", "interface": commentSvc, "version": "1.0.0", "side": "provider",
		"category": "providers", "protocol": "dubbo", "path": commentSvc, "methods": "getComment", "dubbo": "2.0.2", "release": "2.7.23"}
	nacostest.Register(t, nacostest.NewApp(t, addr, nacos.PublicNamespace), vo.RegisterInstanceParam{
		ServiceName: "providers:" + commentSvc + ":1.0.0:", Ip: "10.0.7.1", Port: 20880, Enable: true, Healthy: true, Ephemeral: true, Metadata: md})
	admin := nacostest.NewConfigApp(t, addr, nacos.PublicNamespace)
	publish := func(dataID, content string) {
		t.Helper()
		if ok, err := admin.PublishConfig(vo.ConfigParam{DataId: dataID, Group: "dubbo", Content: content}); err != nil || !ok {
			t.Fatalf("publishing %s: ok=%v err=%v", dataID, ok, err)
		}
	}
	publish("shop-detail.tag-router", govTagRule)
	publish(condDataID, govCondRule)
	publish("shop-detail.configurators", govConfRule)
	publish("shop-detail.MESHAPPRULE", govMeshRule)
	publish("unseen-app.tag-router", govTagRule) // no service suggests this key: never read

	cfg := nacos.ShortConfig(t, addr)
	cfg.Dubbo.Rules = true
	pl := startPipeline(t, cfg, nil)
	const wait = 20 * time.Second
	all := "nacos/" + condDataID + " nacos/shop-detail.MESHAPPRULE nacos/shop-detail.configurators nacos/shop-detail.tag-router"
	pl.waitRules(t, wait, "every rule at sync", all)
	if n := pl.rec.Count("replace-rules"); n == 0 {
		t.Errorf("no ReplaceRules at sync")
	}
	cond := func(want string) func() error {
		return func() error {
			r := pl.mergedRule(registry.RuleKey{Kind: registry.RuleCondition, Name: commentSvc + ":1.0.0:"})
			if r == nil || r.Condition == nil || strings.Join(r.Condition.Conditions, "|") != want {
				return fmt.Errorf("condition rule %+v, want %q", r, want)
			}
			return nil
		}
	}
	testkit.WaitFor(t, wait, "the condition rule", cond("method=getComment => region=Hangzhou"))

	// A change arrives through the config listener.
	start := time.Now()
	publish(condDataID, strings.Replace(govCondRule, "Hangzhou", "Beijing", 1))
	testkit.WaitFor(t, wait, "the changed rule", cond("method=getComment => region=Beijing"))
	t.Logf("a rule change reached the merge layer in %v", time.Since(start))

	// A garbled edit is rejected; the last good version stays until the rule is fixed.
	where := "nacos:public/dubbo/" + condDataID
	publish(condDataID, "conditions: [unclosed")
	testkit.WaitFor(t, wait, "the reject", func() error {
		if rej, _ := pl.rec.Rejects(); rej[where] != dubbo.ReasonBadRule {
			return fmt.Errorf("rejects %v", rej)
		}
		return nil
	})
	if err := cond("method=getComment => region=Beijing")(); err != nil {
		t.Fatalf("after a garbled edit: %v", err)
	}
	publish(condDataID, govCondRule)
	testkit.WaitFor(t, wait, "the fixed rule", cond("method=getComment => region=Hangzhou"))
	if rej, _ := pl.rec.Rejects(); rej[where] != "" {
		t.Errorf("reject not withdrawn after the fix: %v", rej)
	}

	// A deleted config removes its rule.
	if ok, err := admin.DeleteConfig(vo.ConfigParam{DataId: "shop-detail.tag-router", Group: "dubbo"}); err != nil || !ok {
		t.Fatalf("deleting the tag rule: ok=%v err=%v", ok, err)
	}
	kept := "nacos/" + condDataID + " nacos/shop-detail.MESHAPPRULE nacos/shop-detail.configurators"
	pl.waitRules(t, wait, "the deleted rule removed", kept)

	// The server dies: the rules stay.
	n := pl.rec.NEvents()
	p.Kill()
	testkit.WaitFor(t, wait, "the adapter to report the failure", func() error {
		for _, e := range pl.rec.EventsSince(n) {
			if e.Op == "fail" {
				return nil
			}
		}
		return fmt.Errorf("no Fail yet")
	})
	time.Sleep(3 * cfg.PollInterval) // down for a while: nothing may be removed
	if got := pl.mergedRuleKeys(); got != kept {
		t.Fatalf("rules while the server is down: %q, want %q", got, kept)
	}
	for _, e := range pl.rec.EventsSince(n) {
		if e.Op == "delete-rules" || e.Op == "upsert-rules" {
			t.Errorf("while the server is down the adapter sent %s", e.Op)
		}
	}

	// It returns: the recovery sends the rules whole, and the listeners follow changes again.
	p.Restart()
	testkit.WaitFor(t, 30*time.Second, "the recovery ReplaceRules", func() error {
		for _, e := range pl.rec.EventsSince(n) {
			if e.Op == "replace-rules" {
				return nil
			}
		}
		return fmt.Errorf("no ReplaceRules yet")
	})
	if got := pl.mergedRuleKeys(); got != kept {
		t.Errorf("rules after recovery: %q, want %q", got, kept)
	}
	publish(condDataID, strings.Replace(govCondRule, "Hangzhou", "Shanghai", 1))
	testkit.WaitFor(t, wait, "a change after recovery", cond("method=getComment => region=Shanghai"))
}

// mergedRules are the rules the merge layer serves for the registry, sorted.
func (b *bridge) mergedRules() []*registry.Rule {
	for _, lk := range b.p.Merger().LastKnown() {
		if lk.Registry == "nacos" {
			rules := append([]*registry.Rule(nil), lk.Rules...)
			registry.SortRules(rules)
			return rules
		}
	}
	return nil
}

func (b *bridge) mergedRule(k registry.RuleKey) *registry.Rule {
	for _, r := range b.mergedRules() {
		if r.Key() == k {
			return r
		}
	}
	return nil
}

// mergedRuleKeys renders the merge layer's rules as "registry/key" in order.
func (b *bridge) mergedRuleKeys() string {
	var parts []string
	for _, r := range b.mergedRules() {
		parts = append(parts, r.Registry+"/"+r.Key().String())
	}
	return strings.Join(parts, " ")
}

func (b *bridge) waitRules(t testing.TB, timeout time.Duration, what, want string) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, func() error {
		if got := b.mergedRuleKeys(); got != want {
			return fmt.Errorf("rules %q, want %q", got, want)
		}
		return nil
	})
}
