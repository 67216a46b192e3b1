package zookeeper

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// routesOf renders the condition rules the sink holds for a Dubbo 2.6 routers/ category as
// "conditions force priority runtime", sorted.
func routesOf(s *testkit.RecordSink) []string {
	var out []string
	for k, r := range s.Rules() {
		if strings.Contains(k.Name, "/routers/") {
			out = append(out, fmt.Sprintf("%s force=%v priority=%d runtime=%v enabled=%v", strings.Join(r.Condition.Conditions, ";"), r.Force, r.Priority, r.Runtime, r.Enabled))
		}
	}
	sort.Strings(out)
	return out
}

// TestLegacyRoutersAndOverrides: Dubbo 2.6 route:// URLs under an interface's routers/ category
// in a real ZooKeeper become condition rules (added, removed, a script router rejected), and
// override:// URLs under configurators/ are applied to the providers they match (weight,
// disabled) rather than sent as rules.
func TestLegacyRoutersAndOverrides(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	const iface = "com.example.Live"
	routerPath := func(u string) string { return "/dubbo/" + iface + "/routers/" + zktest.JavaURLEncode(u) }
	route := func(extra, rule string) string {
		return "route://0.0.0.0/" + iface + "?category=routers&router=condition&dynamic=false&name=r&" + extra + "&rule=" + zktest.JavaURLEncode(rule)
	}
	gray := route("enabled=true&force=true&priority=2&runtime=false", "method = hello => host = 10.1.0.2")
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", iface, liveURL("10.1.0.1", 20880, "")), nil, false)
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", iface, liveURL("10.1.0.2", 20880, "")), nil, false)
	zktest.Create(t, admin, routerPath(gray), nil, false)
	override := "override://10.1.0.2:20880/" + iface + "?category=configurators&dynamic=false&enabled=true&weight=300"
	zktest.Create(t, admin, "/dubbo/"+iface+"/configurators/"+zktest.JavaURLEncode(override), nil, false)

	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: -1})
	r.waitSynced(t)
	const wait = 10 * time.Second
	want := func(routes ...string) func() error {
		return func() error {
			if got := routesOf(r.sink); strings.Join(got, "|") != strings.Join(routes, "|") {
				return fmt.Errorf("routes %q, want %q", got, routes)
			}
			return nil
		}
	}
	r.sink.Wait(t, wait, "the route as a condition rule", want("method = hello => host = 10.1.0.2 force=true priority=2 runtime=false enabled=true"))
	for _, rule := range r.sink.Rules() {
		if strings.Contains(rule.Name, "/routers/") && (rule.Service == nil || rule.Service.Interface != iface || rule.Scope != registry.ScopeService || !strings.HasPrefix(rule.Source, "/dubbo/"+iface+"/routers/route://")) {
			t.Errorf("route rule %+v", rule)
		}
	}
	// The override is applied to the provider it names; no rule comes of it.
	r.sink.Wait(t, wait, "the override applied", func() error {
		s := r.sink.Get(dubboKey(iface, "", ""))
		if s == nil {
			return fmt.Errorf("no service")
		}
		got := map[string]uint32{}
		for _, in := range s.Instances {
			got[in.Address] = in.Weight
		}
		if got["10.1.0.1"] != 100 || got["10.1.0.2"] != 300 {
			return fmt.Errorf("weights %v", got)
		}
		return nil
	})
	for k := range r.sink.Rules() {
		if k.Kind == registry.RuleConfigurator {
			t.Errorf("override:// sent as a rule %s", k)
		}
	}

	// A second route (a filter without "=>") arrives; a script router is rejected.
	deny := route("", "host != 10.1.0.1")
	zktest.Create(t, admin, routerPath(deny), nil, false)
	script := route("", "function route(invokers) { return invokers; }")
	script = strings.Replace(script, "router=condition", "router=script", 1)
	zktest.Create(t, admin, routerPath(script), nil, false)
	r.sink.Wait(t, wait, "two routes", want("=> host != 10.1.0.1 force=false priority=0 runtime=false enabled=true",
		"method = hello => host = 10.1.0.2 force=true priority=2 runtime=false enabled=true"))
	r.sink.Wait(t, wait, "the script router rejected", func() error {
		for where, reason := range r.rejects() {
			if strings.Contains(where, "router=script") && reason == dubbo.ReasonBadRule {
				return nil
			}
		}
		return fmt.Errorf("rejects %v", r.rejects())
	})

	// Deleting a route's node removes its rule, and only its.
	zktest.Delete(t, admin, routerPath(gray))
	r.sink.Wait(t, wait, "the deleted route removed", want("=> host != 10.1.0.1 force=false priority=0 runtime=false enabled=true"))
}
