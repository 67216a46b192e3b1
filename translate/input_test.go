package translate

import (
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

func fileOptions() Options {
	return Options{Registries: []RegistryOptions{{Name: "file", Hosts: fileHosts}}}
}

func warningsOf(out *Output, reason string) []istio.Warning {
	var ws []istio.Warning
	for _, w := range out.Warnings {
		if w.Reason == reason {
			ws = append(ws, w)
		}
	}
	return ws
}

// Two instances with different ids at the same address and ports used to become two identical
// endpoints (double the traffic share for that address). One is served; the warning names both.
func TestDuplicateEndpointsServedOnce(t *testing.T) {
	in := func(id, addr string, port uint32) registry.Instance {
		return registry.Instance{ID: id, Address: addr, Ports: map[string]uint32{"http": port}, Weight: 1, Healthy: true, Enabled: true}
	}
	for _, tc := range []struct {
		name      string
		instances []registry.Instance
		endpoints int
		warning   string // "" = none
	}{
		{"same address and port", []registry.Instance{in("b", "10.0.0.1", 8080), in("a", "10.0.0.1", 8080)}, 1,
			`instances "a" and "b" are both at 10.0.0.1 http=8080; served once, as "a"`},
		{"IPv4-mapped IPv6 is the same address", []registry.Instance{in("a", "10.0.0.1", 8080), in("b", "::ffff:10.0.0.1", 8080)}, 1,
			`instances "a" and "b" are both at 10.0.0.1 http=8080`},
		{"same address, other port", []registry.Instance{in("a", "10.0.0.1", 8080), in("b", "10.0.0.1", 8081)}, 2, ""},
		{"other address, same port", []registry.Instance{in("a", "10.0.0.1", 8080), in("b", "10.0.0.2", 8080)}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "orders",
				Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}, Instances: tc.instances}
			out := mustNew(t, fileOptions()).Translate([]*registry.Service{s})
			if got := len(seSpec(t, out.Resources[istio.CollectionServiceEntry][0]).Endpoints); got != tc.endpoints {
				t.Errorf("%d endpoints, want %d", got, tc.endpoints)
			}
			ws := warningsOf(out, reasonDuplicateEndpoint)
			switch {
			case tc.warning == "" && len(ws) > 0:
				t.Errorf("unexpected warning %+v", ws)
			case tc.warning != "" && (len(ws) != 1 || !strings.Contains(ws[0].Detail, tc.warning)):
				t.Errorf("warnings %+v, want one containing %q", ws, tc.warning)
			case tc.warning != "" && DropsEndpoint(ws[0]):
				t.Errorf("a duplicate endpoint is still served; render must not fail on it")
			}
		})
	}
}

// A label key or value rewritten to be valid used to change silently, which can break a subset
// selector written against the registry's labels. Each rewritten key is its own warning, with
// the original and the result; labels left as they are give none.
func TestLabelRewritesAreWarnedPerKey(t *testing.T) {
	s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "orders",
		Ports:  []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}},
		Labels: map[string]string{"bad key!": "v1", "ok": "fine"},
		Instances: []registry.Instance{
			{ID: "a", Address: "10.0.0.1", Weight: 1, Healthy: true, Enabled: true, Labels: map[string]string{"env": "灰度", "version": "1.0"}},
			{ID: "b", Address: "10.0.0.2", Weight: 1, Healthy: true, Enabled: true, Labels: map[string]string{"env": "灰度", "team": "Platform Team"}},
		}}
	o := fileOptions()
	o.Labels.Mode = LabelModeAll // team is not in the routing allowlist
	out := mustNew(t, o).Translate([]*registry.Service{s})
	var got []string
	for _, w := range warningsOf(out, reasonLabelRewritten) {
		got = append(got, w.Detail)
	}
	want := []string{
		`label "env": value "灰度" -> "xn--wxtw90b" (2 times in all)`,
		`label "team": value "Platform Team" -> "Platform-Team"`,
		`label key "bad key!" -> "bad-key"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("label-rewritten warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
