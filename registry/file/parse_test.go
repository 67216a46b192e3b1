package file

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestExampleParsesAndValidates(t *testing.T) {
	services, err := Parse(Example())
	if err != nil {
		t.Fatalf("embedded example: %v", err)
	}
	byName := map[string]*registry.Service{}
	for _, s := range services {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
		if len(s.Instances) < 2 {
			t.Errorf("%s: %d instances, want several", s.Name, len(s.Instances))
		}
		byName[s.Name] = s
	}
	checks := []struct {
		name  string
		kind  registry.Kind
		ports []registry.Port
	}{
		{"org.apache.dubbo.samples.api.GreetingsService", registry.KindDubboInterface, []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}},
		{"shop-order", registry.KindDubboApplication, []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}, {Name: "tri", Protocol: registry.ProtocolTriple}}},
		{"user-service", registry.KindApplication, []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}},
	}
	for _, c := range checks {
		s := byName[c.name]
		if s == nil {
			t.Errorf("example lacks %s", c.name)
			continue
		}
		if s.Kind != c.kind {
			t.Errorf("%s: kind %s, want %s", c.name, s.Kind, c.kind)
		}
		if !samePorts(s.Ports, c.ports) {
			t.Errorf("%s: ports %v, want %v", c.name, s.Ports, c.ports)
		}
	}
	if s := byName["shop-order"]; s != nil && len(s.Aliases) == 0 {
		t.Errorf("shop-order: no interface alias")
	}
	if s := byName["org.apache.dubbo.samples.api.GreetingsService"]; s != nil && s.Version == "" {
		t.Errorf("GreetingsService: no version")
	}
}

func samePorts(a, b []registry.Port) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseDefaultsAndShorthand(t *testing.T) {
	services, err := Parse([]byte(`
services:
  - name: user-service
    instances:
      - address: 127.0.0.2
        ports: {http: 8080}
      - address: 127.0.0.1
        ports: {http: 8080}
        weight: 0
        healthy: false
        enabled: false
        id: custom
        labels: {version: 1.0}
        locality: {region: r1, zone: z1, subzone: s1}
  - name: orders
    kind: dubbo-application
    ports:
      - {name: dubbo, protocol: dubbo}
      - {name: tri, protocol: tri}
    instances:
      - address: "::1"
        ports: {tri: 50051, dubbo: 20880}
      - address: orders-1.example.com
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 2 {
		t.Fatalf("got %d services, want 2", len(services))
	}
	user, orders := services[0], services[1]
	if user.Kind != registry.KindApplication || !samePorts(user.Ports, []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}) {
		t.Errorf("shorthand: kind %s ports %v", user.Kind, user.Ports)
	}
	// Instances come sorted by ID.
	want := []registry.Instance{
		{ID: "127.0.0.2:8080", Address: "127.0.0.2", Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true},
		{ID: "custom", Address: "127.0.0.1", Ports: map[string]uint32{"http": 8080}, Weight: 0, Healthy: false, Enabled: false,
			Labels: map[string]string{"version": "1.0"}, Locality: registry.Locality{Region: "r1", Zone: "z1", Subzone: "s1"}},
	}
	if len(user.Instances) != len(want) {
		t.Fatalf("instances %+v", user.Instances)
	}
	for i, w := range want {
		g := user.Instances[i]
		if g.ID != w.ID || g.Address != w.Address || g.Ports["http"] != w.Ports["http"] || g.Weight != w.Weight ||
			g.Healthy != w.Healthy || g.Enabled != w.Enabled || g.Locality != w.Locality || g.Labels["version"] != w.Labels["version"] {
			t.Errorf("instance %d = %+v, want %+v", i, g, w)
		}
	}
	ids := []string{orders.Instances[0].ID, orders.Instances[1].ID}
	if ids[0] != "[::1]:20880,50051" || ids[1] != "orders-1.example.com" {
		t.Errorf("default ids %q, want port numbers in the service's port order, and the bare address without ports", ids)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing yet\n", "services: []\n"} {
		services, err := Parse([]byte(in))
		if err != nil || len(services) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no services, no error", in, services, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		want     string
	}{
		{"unknown field", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        prots: {http: 80}\n", 5, `unknown field "prots"`},
		{"unknown top-level field", "service:\n  - name: a\n", 1, `unknown field "service"`},
		{"syntax", "services:\n  - name: a\n    ports: [\n", 3, "did not find expected node content"},
		{"wrong type", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        weight: heavy\n", 5, "cannot unmarshal"},
		{"negative port", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: -1}\n", 5, "cannot unmarshal"},
		{"duplicate key", "services:\n  - name: a\n    name: b\n", 3, "already defined"},
		{"no name", "services:\n  - kind: application\n", 2, "name is required"},
		{"bad kind", "services:\n  - name: a\n    kind: dubbo\n", 3, `kind "dubbo" is not one of`},
		{"version on application", "services:\n  - name: a\n    version: 1.0.0\n", 3, "version applies only to kind dubbo-interface"},
		{"aliases on interface", "services:\n  - name: a\n    kind: dubbo-interface\n    aliases: [x]\n", 4, "aliases apply only to kind dubbo-application"},
		{"duplicate service", "services:\n  - name: a\n  - name: b\n  - name: a\n", 4, "already defined at line 2"},
		{"port without protocol", "services:\n  - name: a\n    ports:\n      - {name: web}\n", 4, "protocol is required"},
		{"unknown protocol", "services:\n  - name: a\n    ports:\n      - name: web\n        protocol: htpp\n", 5, `protocol "htpp" is not one of`},
		{"duplicate port", "services:\n  - name: a\n    ports:\n      - {name: http, protocol: http}\n      - {name: http, protocol: grpc}\n", 5, `port name "http" is already used at line 4`},
		{"missing address", "services:\n  - name: a\n    instances:\n      - ports: {http: 80}\n", 4, "address is required"},
		{"address with port", "services:\n  - name: a\n    instances:\n      - address: 10.0.0.1:20880\n", 4, "looks like address:port"},
		{"bad host name", "services:\n  - name: a\n    instances:\n      - address: my_host\n", 4, `label "my_host"`},
		// Istio drops these endpoints; the file used to pass them as DNS names.
		{"mistyped IPv4", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: 80}\n      - address: 10.0.0.300\n        ports: {http: 80}\n", 6, `address: "10.0.0.300" is not a valid IPv4 address`},
		{"all-numeric last label", "services:\n  - name: a\n    instances:\n      - address: 10.0.0\n", 4, "all-numeric"},
		{"IPv6 zone", "services:\n  - name: a\n    instances:\n      - address: fe80::1%eth0\n", 4, "zone"},
		{"undeclared port", "services:\n  - name: a\n    ports:\n      - {name: dubbo, protocol: dubbo}\n    instances:\n      - address: 1.2.3.4\n        ports:\n          dubbo: 20880\n          tri: 50051\n", 9, `port "tri" is not declared`},
		{"port out of range", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: 70000}\n", 5, "out of range"},
		{"port zero", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: 0}\n", 5, "out of range"},
		{"shorthand with non-protocol name", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {web: 80}\n", 2, `port "web" is not a protocol name`},
		{"shorthand with two ports", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: 80, grpc: 90}\n", 2, "use 2 port names"},
		{"duplicate instance id", "services:\n  - name: a\n    instances:\n      - address: 1.2.3.4\n        ports: {http: 80}\n      - address: 1.2.3.4\n        ports: {http: 80}\n", 6, `"1.2.3.4:80" is already used at line 4`},
		{"not a mapping", "- name: a\n", 1, "cannot unmarshal !!seq into a services file"},
		{"services not a list", "services: {name: a}\n", 1, "cannot unmarshal !!map into a list of services"},
		{"two documents", "services: []\n---\nservices: []\n", 2, "only one YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			services, err := Parse([]byte(c.in))
			if err == nil {
				t.Fatalf("no error; got %d services", len(services))
			}
			if services != nil {
				t.Errorf("services returned with an error: a bad file must yield nothing")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T %v is not Errors", err, err)
			}
			if got := es.FirstLine(); got != c.line {
				t.Errorf("line %d, want %d (error: %v)", got, c.line, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseReportsEveryProblemBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 0; i < 15; i++ {
		b.WriteString("  - kind: application\n") // no name: one problem each
	}
	_, err := Parse([]byte(b.String()))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v", err)
	}
	if len(es) != maxErrors+1 || !strings.Contains(es[len(es)-1].Error(), "and 5 more problems") {
		t.Errorf("got %d errors (%v); want %d and a summary of the rest", len(es), err, maxErrors)
	}
	if es[0].Line != 2 || es[1].Line != 3 {
		t.Errorf("lines %d, %d; want 2, 3", es[0].Line, es[1].Line)
	}
}

func TestConfig(t *testing.T) {
	if got := (Config{}).WithDefaults().PollInterval; got != DefaultPollInterval {
		t.Errorf("default pollInterval %s", got)
	}
	if got := (Config{}).WithDefaults().MaxBytes; got != 64<<20 {
		t.Errorf("default maxBytes %d, want 64 MiB", got)
	}
	if err := (Config{MaxBytes: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "maxBytes:") {
		t.Errorf("negative maxBytes: %v", err)
	}
	if err := (Config{PollInterval: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "pollInterval:") {
		t.Errorf("negative pollInterval: %v", err)
	}
	if err := (Config{Path: "x.yaml"}).WithDefaults().Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
