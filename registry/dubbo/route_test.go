package dubbo

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestRouteRule(t *testing.T) {
	enc := url.QueryEscape
	const base = "0.0.0.0/com.foo.BarService?category=routers&dynamic=false"
	for _, tc := range []struct {
		name, url string
		want      string // "conditions|enabled|force|runtime|priority|version|group", "" for no rule
		err       string
	}{
		{"admin 2.6 route", "route://" + base + "&router=condition&enabled=true&force=true&runtime=false&priority=3&name=r1&rule=" + enc("host = 10.20.153.10 => host = 10.20.153.11"),
			"host = 10.20.153.10 => host = 10.20.153.11|true|true|false|3||", ""},
		{"condition protocol, defaults", "condition://" + base + "&rule=" + enc("method = find* => host = 10.0.0.1"),
			"method = find* => host = 10.0.0.1|true|false|false|0||", ""},
		{"version and group", "route://" + base + "&version=1.0.0&group=g1&rule=" + enc("=> region = eu"),
			"=> region = eu|true|false|false|0|1.0.0|g1", ""},
		{"no arrow is a filter", "route://" + base + "&rule=" + enc("host != 10.0.0.1"), "=> host != 10.0.0.1|true|false|false|0||", ""},
		{"disabled", "route://" + base + "&enabled=false&rule=" + enc("a=b => c=d"), "a=b => c=d|false|false|false|0||", ""},
		{"empty clears", "empty://" + base, "", ""},
		{"script router", "route://" + base + "&router=script&rule=" + enc("function route(){}"), "", "script routers are not translated"},
		{"file router", "file://" + base, "", "not route, condition or empty"},
		{"no rule", "route://" + base, "", "rule: missing or empty"},
		{"bad force", "route://" + base + "&force=yes&rule=" + enc("a=b => c=d"), "", `force: "yes" is not true or false`},
		{"bad priority", "route://" + base + "&priority=high&rule=" + enc("a=b => c=d"), "", `priority: "high" is not an integer`},
		{"bad encoding", "route://" + base + "&rule=%zz", "", "not URL-encoded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			r, err := RouteRule("com.foo.BarService", "/dubbo/com.foo.BarService/routers/x", u)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || Reason(err) != ReasonBadRule {
					t.Fatalf("err %v (reason %q), want %q with reason %s", err, Reason(err), tc.err, ReasonBadRule)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if r != nil {
					t.Fatalf("rule %+v, want none", r)
				}
				return
			}
			got := strings.Join([]string{strings.Join(r.Condition.Conditions, ";"), strconv.FormatBool(r.Enabled), strconv.FormatBool(r.Force), strconv.FormatBool(r.Runtime),
				strconv.Itoa(r.Priority), r.Service.Version, r.Service.Group}, "|")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !strings.HasPrefix(r.Name, "com.foo.BarService:"+r.Service.Version+":"+r.Service.Group+"/routers/") {
				t.Errorf("name %q", r.Name)
			}
		})
	}
	// The name follows where the URL is stored: two routers of one service are two rules.
	u, _ := ParseURL("route://" + base + "&rule=" + enc("a=b => c=d"))
	r1, _ := RouteRule("com.foo.BarService", "/dubbo/x/routers/1", u)
	r2, _ := RouteRule("com.foo.BarService", "/dubbo/x/routers/2", u)
	if r1.Key() == r2.Key() {
		t.Errorf("two stored routers share the key %s", r1.Key())
	}
}
