package zookeeper

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// FuzzParseCurator: any data a /services/<app>/<id> znode may hold (Curator ServiceInstance JSON
// with a Dubbo 3 or Spring Cloud payload) parses without panicking, to the same result every
// time, into a member whose ports are in range, or into an error with a reason. Seeds: the
// captured instances of testdata/tree.txt.
func FuzzParseCurator(f *testing.F) {
	for _, l := range testkit.Lines(f, filepath.Join("testdata", "tree.txt")) {
		if p, data, ok := strings.Cut(l, " = "); ok && strings.HasPrefix(p, "/services/") {
			f.Add([]byte(data))
		}
	}
	for _, s := range []string{
		`{"address":"10.0.0.1","port":20880,"payload":null}`,
		`{"address":"[::1]","port":-1,"sslPort":70000,"enabled":false,"payload":{"@class":"` + classSpring + `","metadata":{"instance_status":"DOWN"}}}`,
		`{"address":"h","port":1,"payload":{"@class":"` + classDubbo + `","metadata":{"dubbo.endpoints":"[{\"port\":1,\"protocol\":\"tri\"}]","weight":"99999999999"}}}`,
		`{"payload":"x"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, m, err := parseCurator("app", "id", data)
		kind2, m2, err2 := parseCurator("app", "id", data)
		if kind != kind2 || !reflect.DeepEqual(m, m2) || (err == nil) != (err2 == nil) {
			t.Fatalf("two parses differ: %v %+v %v and %v %+v %v", kind, m, err, kind2, m2, err2)
		}
		if err != nil {
			if dubbo.Reason(err) == "invalid" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if kind != registry.KindDubboApplication && kind != registry.KindApplication {
			t.Fatalf("kind %q", kind)
		}
		testkit.CheckMember(t, m.Ports, m.Instance, dubbo.IsSensitive)
		if m.Instance.Address == "" || m.Instance.Labels["app"] != "app" {
			t.Fatalf("instance %+v", m.Instance)
		}
	})
}
