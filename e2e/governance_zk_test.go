package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// The Dubbo 3 applications of TestGovernanceZooKeeperTraffic (hosts "<app>.zookeeper", port 50051).
const (
	govTagged = "gov-tagged"
	govCond   = "gov-cond"
	govDeny   = "gov-deny"
	// govRuleRoot is Dubbo's configuration center root in ZooKeeper (the adapter's default
	// governanceRoot): rules are /dubbo/config/dubbo/<key><suffix>.
	govRuleRoot = "/dubbo/config/dubbo"
	// A Triple call's path is /<interface>/<method>.
	govSayHello   = "/org.apache.dubbo.demo.GreeterService/sayHello"
	govSayGoodbye = "/org.apache.dubbo.demo.GreeterService/sayGoodbye"
)

// Rules in Dubbo's own YAML, as Dubbo Admin writes them (the shapes of Dubbo's traffic
// management documentation: a tag rule by addresses keyed by the provider application; v3.0
// application-scoped condition rules).
func govTagRule(addrs ...string) string {
	return fmt.Sprintf(`configVersion: v3.0
force: false
enabled: true
runtime: true
key: %s
tags:
  - name: gray
    addresses: ["%s"]
`, govTagged, strings.Join(addrs, `", "`))
}

func govCondRule(app, condition string) string {
	return fmt.Sprintf(`configVersion: v3.0
scope: application
force: false
runtime: true
enabled: true
key: %s
conditions:
  - %s
`, app, condition)
}

// TestGovernanceZooKeeperTraffic is issue 14's real-traffic test of the registries' governance
// rules (governance.mode apply): rules written to a real ZooKeeper in Dubbo's YAML, Dubbo 3
// Triple providers registered there (application instances whose metadata carries version and
// which backends answer any method), the real Istiod, proxyless gRPC clients:
//   - a tag rule assigning tag gray to two addresses: dubbo-tag: gray requests reach those two,
//     untagged ones the third; when both gray instances leave, gray requests fall back to it;
//   - a condition rule "method=sayHello => version=2.0.0": sayHello reaches only the 2.0.0
//     instance, sayGoodbye both;
//   - a deny rule "method=sayHello =>": sayHello fails with PERMISSION_DENIED (HTTP 403 abort),
//     sayGoodbye is answered; deleting the rule in ZooKeeper lets sayHello through again.
func TestGovernanceZooKeeperTraffic(t *testing.T) {
	t.Parallel()
	tagged := traffic.StartBackends(t, "127.0.51.1", "127.0.51.2", "127.0.51.3") // untagged, gray, gray
	cond := traffic.StartBackends(t, "127.0.52.1", "127.0.52.2")                 // 1.0.0, 2.0.0
	deny := traffic.StartBackends(t, "127.0.53.1")
	z, admin, _, cp, _ := zkStartWith(t, "inline", "governance:\n  mode: apply\n")

	registerDubbo3(t, z.Addr(), govTagged, tagged[0], map[string]string{"version": "1.0.0"})
	gray1 := registerDubbo3(t, z.Addr(), govTagged, tagged[1], map[string]string{"version": "1.0.0"})
	gray2 := registerDubbo3(t, z.Addr(), govTagged, tagged[2], map[string]string{"version": "1.0.0"})
	registerDubbo3(t, z.Addr(), govCond, cond[0], map[string]string{"version": "1.0.0"})
	registerDubbo3(t, z.Addr(), govCond, cond[1], map[string]string{"version": "2.0.0"})
	registerDubbo3(t, z.Addr(), govDeny, deny[0], map[string]string{"version": "1.0.0"})
	zktest.Create(t, admin, govRuleRoot+"/"+govTagged+".tag-router", []byte(govTagRule(tagged[1].Addr, tagged[2].Addr)), false)
	zktest.Create(t, admin, govRuleRoot+"/"+govCond+".condition-router", []byte(govCondRule(govCond, "method=sayHello => version=2.0.0")), false)
	denyRule := govRuleRoot + "/" + govDeny + ".condition-router"
	zktest.Create(t, admin, denyRule, []byte(govCondRule(govDeny, "method=sayHello =>")), false)

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	gray := map[string]string{"dubbo-tag": "gray"}

	t.Run("tag rule", func(t *testing.T) {
		target := traffic.Target(rtHost(govTagged), rulesTriPort)
		wantAnswers(t, client, target, gray, []string{tagged[1].Addr, tagged[2].Addr}, 60*time.Second)
		if got := callOnce(t, client, target, 50, nil); len(got) != 1 || got[tagged[0].Addr] != 50 {
			t.Errorf("untagged requests answered by %v, want all 50 by %s (not named by the rule)", got, tagged[0].Addr)
		}
		at := time.Now()
		gray1.deregister(t)
		gray2.deregister(t)
		wantAnswers(t, client, target, gray, []string{tagged[0].Addr}, 30*time.Second)
		t.Logf("measure: both gray instances gone -> gray requests fall back to the untagged one: %v", time.Since(at).Round(time.Millisecond))
		gray2.register(t)
		wantAnswers(t, client, target, gray, []string{tagged[2].Addr}, 30*time.Second)
	})

	t.Run("condition rule", func(t *testing.T) {
		target := traffic.Target(rtHost(govCond), rulesTriPort)
		wantCallAnswers(t, client, traffic.Call{Target: target, Method: govSayHello}, []string{cond[1].Addr}, 60*time.Second)
		wantCallAnswers(t, client, traffic.Call{Target: target, Method: govSayGoodbye}, []string{cond[0].Addr, cond[1].Addr}, 30*time.Second)
		res := doCall(t, client, traffic.Call{Target: target, Method: govSayHello, N: 50, Timeout: 10 * time.Second})
		if res.Failed() > 0 || res.Counts[cond[1].Addr] != 50 {
			t.Errorf("sayHello answered by %v (errors %v), want all 50 by the 2.0.0 instance %s", res.Counts, res.Errors, cond[1].Addr)
		}
	})

	t.Run("deny rule", func(t *testing.T) {
		target := traffic.Target(rtHost(govDeny), rulesTriPort)
		wantCallAnswers(t, client, traffic.Call{Target: target, Method: govSayGoodbye}, []string{deny[0].Addr}, 60*time.Second)
		var res *traffic.Result
		for start := time.Now(); ; {
			res = doCall(t, client, traffic.Call{Target: target, Method: govSayHello, N: 10, Timeout: 10 * time.Second})
			if res.Failed() == 10 && allContain(res.Errors, "PermissionDenied") || time.Since(start) > 30*time.Second {
				break
			}
		}
		if res.Failed() != 10 || !allContain(res.Errors, "PermissionDenied") {
			t.Fatalf("sayHello under a deny rule: answered by %v, errors %v; want every call to fail with PermissionDenied", res.Counts, res.Errors)
		}
		hits := deny[0].Hits()
		res = doCall(t, client, traffic.Call{Target: target, Method: govSayHello, N: 20, Timeout: 10 * time.Second})
		if res.Failed() != 20 || deny[0].Hits() != hits {
			t.Errorf("denied calls: %v failed of 20, backend reached %d times; want all failed before the backend", res.Failed(), deny[0].Hits()-hits)
		}
		zktest.Delete(t, admin, denyRule)
		wantCallAnswers(t, client, traffic.Call{Target: target, Method: govSayHello}, []string{deny[0].Addr}, 30*time.Second)
	})

	if bad := istiodRejections(cp.Istiod.Log()); len(bad) > 0 {
		t.Errorf("Istiod dropped or a client refused a resource:\n%s", strings.Join(bad, "\n"))
	}
}

// doCall runs one batch; a batch that could not run fails the test.
func doCall(t *testing.T, c *traffic.Client, call traffic.Call) *traffic.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Do(ctx, call)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
