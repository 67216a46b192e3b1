package dubbo

import (
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// addProviderURLs seeds a fuzz target with the captured provider URLs of testdata (znode names
// as Dubbo encodes them, and decoded URLs).
func addProviderURLs(f *testing.F) {
	for _, l := range testkit.Lines(f, filepath.Join("testdata", "provider_urls.txt")) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			f.Add(l)
		}
	}
}

// FuzzParseURL: any string a registry may hold as a provider, consumer or configurator URL
// (decoded, or as a ZooKeeper znode name) parses without panicking, to the same result every
// time, into a URL whose parts are in range, and what it maps to holds no credential.
func FuzzParseURL(f *testing.F) {
	addProviderURLs(f)
	for _, s := range []string{
		"dubbo://[::1]:20880/com.foo.Bar?version=1.0",
		"dubbo://fe80::1%eth0/com.foo.Bar",
		"override://0.0.0.0/com.foo.Bar?category=configurators&dynamic=false&weight=200&application=app",
		"absent://10.0.0.1:20880/com.foo.Bar?disabled=true",
		"consumer://10.0.0.2/com.foo.Bar?group=a,b&version=*",
		"tri://user:pw@host_1.example:50051/x?default.weight=5&password=p&token=t",
		"dubbo%3A%2F%2F10.0.0.1%3A20880%2Fcom.foo.Bar%3Fweight%3D%2B1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (*URL, error){ParseURL, ParseZNodeName} {
			u, err := parse(s)
			u2, err2 := parse(s)
			if !reflect.DeepEqual(u, u2) || (err == nil) != (err2 == nil) {
				t.Fatalf("parsing %q twice gave %+v, %v and %+v, %v", s, u, err, u2, err2)
			}
			if err != nil {
				if u != nil {
					t.Fatalf("error %v with a URL %+v", err, u)
				}
				if Reason(err) == "invalid" {
					t.Fatalf("error without a reason: %v", err)
				}
				continue
			}
			checkURL(t, u)
		}
	})
}

func checkURL(t *testing.T, u *URL) {
	t.Helper()
	if u.Port > 65535 {
		t.Fatalf("port %d", u.Port)
	}
	str := u.String()
	if !utf8.ValidString(str) || str != u.String() {
		t.Fatalf("String() is not valid UTF-8 or not stable: %q", str)
	}
	for k, v := range u.Params {
		if IsSensitive(k) && v != "" && v != "***" && strings.Contains(str, k+"="+v) {
			t.Fatalf("String() shows credential %s: %q", k, str)
		}
	}
	if p, err := NewProvider(u); err == nil {
		if port := p.Instance.Ports[p.Ports[0].Name]; port == 0 || port > 65535 {
			t.Fatalf("provider port %d", port)
		}
		for k := range p.Instance.Labels {
			if IsSensitive(k) {
				t.Fatalf("label %q is a credential", k)
			}
		}
	} else if Reason(err) == "invalid" {
		t.Fatalf("NewProvider error without a reason: %v", err)
	}
	if c, err := NewConfigurator(u); err == nil {
		configured, _ := Configurators{c}.Apply(u.Clone())
		if configured == nil {
			t.Fatal("Apply returned no URL")
		}
	}
}

// FuzzAppMember: the metadata of a Dubbo 3 application-level instance (dubbo.endpoints JSON,
// weight, timestamp, labels) maps without panicking, deterministically, to a member whose ports
// are in range and named uniquely, or to an error with a reason.
func FuzzAppMember(f *testing.F) {
	for _, s := range []struct {
		host, endpoints, weight string
		port                    uint32
	}{
		{"30.221.146.35", `[{"port":20880,"protocol":"dubbo"}]`, "", 20880},
		{"10.0.0.1", `[{"port":50051,"protocol":"tri"},{"port":20880,"protocol":"dubbo"}]`, "100", 0},
		{"[::1]", `[{"port":50052,"protocol":"tri"},{"port":50051,"protocol":"tri"},{"port":9,"protocol":"injvm"}]`, "", 1},
		{"host.example", "20880:dubbo", "x", 1},
		{"10.0.0.2", `[{"port":0,"protocol":"dubbo"}]`, "", 1},
		{"10.0.0.3", `[{"port":70000,"protocol":"dubbo"}]`, "", 1},
		{"10.0.0.4", `null`, "", 20880},
		{"10.0.0.5", "", "-1", 20880},
	} {
		f.Add(s.host, s.port, s.endpoints, s.weight, "application=demo\ntimestamp=1700000000000\ndubbo.tag=gray")
	}
	f.Fuzz(func(t *testing.T, host string, port uint32, endpoints, weight, extra string) {
		md := map[string]string{"weight": weight}
		if endpoints != "" {
			md["dubbo.endpoints"] = endpoints
		}
		for _, l := range strings.Split(extra, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				md[k] = v
			}
		}
		m, err := AppMember("app", "id", host, port, md)
		m2, err2 := AppMember("app", "id", host, port, md)
		if !reflect.DeepEqual(m, m2) || (err == nil) != (err2 == nil) {
			t.Fatalf("two calls differ: %+v, %v and %+v, %v", m, err, m2, err2)
		}
		if err != nil {
			if Reason(err) == "invalid" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		testkit.CheckMember(t, m.Ports, m.Instance, IsSensitive)
	})
}
