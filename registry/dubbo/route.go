package dubbo

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Dubbo 2.6 keeps condition routers as URLs under an interface's routers/ category, as Dubbo
// Admin 2.5/2.6 and operators write them:
//
//	route://0.0.0.0/com.foo.BarService?category=routers&router=condition&dynamic=false&enabled=true&force=false&priority=0&runtime=false&name=r1&rule=<URL.encode("host = 10.20.153.10 => host = 10.20.153.11")>
//	condition://0.0.0.0/com.foo.BarService?category=routers&dynamic=false&rule=...
//
// RegistryDirectory.toRouters takes the router type from the router parameter (the protocol
// otherwise), ConditionRouter reads rule (decoded), force (default false), runtime (default
// false), priority (default 0); a consumer only sees a router URL that is enabled (default true)
// and matches its group and version (UrlUtils.isMatch). empty:// clears the category.

// RouteRule maps a routers/ URL of interface iface, stored at id (a znode path), to a condition
// rule. It returns nil and no
// error for empty://, which is no rule. Script and file routers (JavaScript, a rule file) are
// rejected: nothing in Istio evaluates them. Errors have reason ReasonBadRule.
func RouteRule(iface, id string, u *URL) (*registry.Rule, error) {
	if u.Protocol == "empty" {
		return nil, nil
	}
	typ := u.Protocol
	if r := u.Params["router"]; r != "" {
		typ = r
	}
	switch {
	case u.Protocol != "route" && u.Protocol != "condition":
		return nil, reasonf(ReasonBadRule, "router protocol %q is not route, condition or empty", truncate(u.Protocol, 40))
	case typ != "condition" && typ != "route":
		return nil, reasonf(ReasonBadRule, "%s routers are not translated (only condition routers are)", truncate(typ, 40))
	}
	raw, err := url.QueryUnescape(u.Params["rule"])
	if err != nil {
		return nil, reasonf(ReasonBadRule, "rule: not URL-encoded: %v", err)
	}
	raw = strings.TrimSpace(raw)
	when, then, found := strings.Cut(raw, "=>")
	if !found {
		when, then = "", raw // ConditionRouter: a rule without "=>" is a filter on every request
	}
	when, then = strings.TrimSpace(when), strings.TrimSpace(then)
	if when == "" && then == "" {
		return nil, reasonf(ReasonBadRule, "rule: missing or empty (rule=<URL-encoded \"<match> => <filter>\">)")
	}
	cond := strings.TrimSpace(when + " => " + then)
	rule := &registry.Rule{
		Kind: registry.RuleCondition, Scope: registry.ScopeService,
		Service: &registry.RuleService{Interface: iface, Version: u.Params["version"], Group: u.Params["group"]},
		Enabled: true, Condition: &registry.ConditionRule{Conditions: []string{cond}}, Raw: u.String(),
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"enabled", &rule.Enabled}, {"force", &rule.Force}, {"runtime", &rule.Runtime}} {
		if v := u.Params[b.key]; v != "" {
			if *b.dst, err = strconv.ParseBool(v); err != nil {
				return nil, reasonf(ReasonBadRule, "%s: %q is not true or false", b.key, truncate(v, 20))
			}
		}
	}
	if v := u.Params["priority"]; v != "" {
		if rule.Priority, err = strconv.Atoi(v); err != nil {
			return nil, reasonf(ReasonBadRule, "priority: %q is not an integer", truncate(v, 20))
		}
	}
	// Several routers may govern one service: the name is the service key and a hash of where
	// the URL is stored, so each stays its own rule and deleting one never deletes another.
	h := fnv.New32a()
	h.Write([]byte(id))
	s := rule.Service
	rule.Name = fmt.Sprintf("%s:%s:%s/routers/%08x", s.Interface, s.Version, s.Group, h.Sum32())
	if err := rule.Validate(); err != nil {
		return nil, reasonf(ReasonBadRule, "%w", err)
	}
	return rule, nil
}
