package translate

import (
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// FuzzSanitizeLabel: whatever a registry sends, the result is a label Istio and Kubernetes
// accept; a valid input is kept as it is (so no warning is due), and sanitising is idempotent (a
// sanitised label does not change again, so its warning is about the registry's text only).
func FuzzSanitizeLabel(f *testing.F) {
	for _, s := range []string{"", "v1", "a_b-c.d", "bad key!", "灰度", "Example.COM/Team", "a/b/c", "/name",
		"_leading", "-edge-", "\xff\xfe", "10.0.0.1:20880", strings.Repeat("k", 70), "x/" + strings.Repeat("p.", 130) + "n",
		"istio.io/rev", "{\"k\":\"v\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := SanitizeLabelValue(s)
		if !istio.ValidLabelValue(v) {
			t.Fatalf("SanitizeLabelValue(%q) = %q: not a valid value", s, v)
		}
		if istio.ValidLabelValue(s) && v != s {
			t.Fatalf("SanitizeLabelValue(%q) = %q: a valid value was changed", s, v)
		}
		if again := SanitizeLabelValue(v); again != v {
			t.Fatalf("SanitizeLabelValue not idempotent: %q -> %q -> %q", s, v, again)
		}
		k, ok := SanitizeLabelKey(s)
		if !ok {
			return
		}
		if !istio.ValidLabelKey(k) {
			t.Fatalf("SanitizeLabelKey(%q) = %q: not a valid key", s, k)
		}
		if istio.ValidLabelKey(s) && k != s {
			t.Fatalf("SanitizeLabelKey(%q) = %q: a valid key was changed", s, k)
		}
		if again, ok := SanitizeLabelKey(k); !ok || again != k {
			t.Fatalf("SanitizeLabelKey not idempotent: %q -> %q -> %q", s, k, again)
		}
		// Through sanitizeLabels: every key and value out is valid, and a rewrite is noted.
		var n notes
		out := sanitizeLabels(map[string]string{s: s}, dropOnly(), &n, nil)
		for ok, ov := range out {
			if !istio.ValidLabelKey(ok) || !istio.ValidLabelValue(ov) {
				t.Fatalf("sanitizeLabels(%q) gave %q=%q", s, ok, ov)
			}
			if (ok != s || ov != s) && len(n.m) == 0 {
				t.Fatalf("sanitizeLabels(%q) rewrote it to %q=%q without a warning", s, ok, ov)
			}
		}
	})
}

// FuzzHost: a host template over any registry names yields a valid DNS host or an error, never
// an invalid host (which Istiod would drop) and never a panic; the same input, the same host.
func FuzzHost(f *testing.F) {
	f.Add("", "order", "DEFAULT_GROUP", "public", "1.0.0", uint8(0))
	f.Add("", "com.example.Greeter$Inner", "g", "", "1.2.3", uint8(1))
	f.Add("", "支付", "", "ns_x", "", uint8(2))
	f.Add("{{.Name}}.{{.Registry}}.svc", "a..b", "", "", "", uint8(0))
	f.Add("{{.Name | lower}}-{{.Group | default \"x\"}}.{{.Namespace}}", "UPPER", "", "n", "", uint8(0))
	f.Add("{{replace \"-\" \".\" .Name}}", "10-0-0-300", "", "", "", uint8(0))
	f.Add("{{.Version}}", "", "", "", "123", uint8(1))
	f.Fuzz(func(t *testing.T, tmpl, name, group, namespace, version string, k uint8) {
		// Templates are operator configuration: keep to short ones without printf widths or
		// loops, whose cost is the operator's choice, not a registry's.
		if len(tmpl) > 100 || strings.Contains(tmpl, "printf") || strings.Contains(tmpl, "range") || strings.Contains(tmpl, "template") {
			return
		}
		kind := []registry.Kind{registry.KindApplication, registry.KindDubboInterface, registry.KindDubboApplication}[int(k)%3]
		opts := Options{PreserveHostCase: k >= 128, Registries: []RegistryOptions{{Name: "r",
			Hosts: HostTemplates{Application: tmpl, DubboInterface: tmpl, DubboApplication: tmpl}}}}
		tr, err := New(opts)
		if err != nil {
			return // an invalid template is refused at start-up
		}
		reg := tr.regs["r"]
		h, err := tr.host(reg, kind, name, group, namespace, version, "r")
		if err != nil {
			return
		}
		if err := istio.CheckHost(h); err != nil {
			t.Fatalf("host %q accepted: %v", h, err)
		}
		if !opts.PreserveHostCase && h != strings.ToLower(h) {
			t.Fatalf("host %q is not lower-case", h)
		}
		if h2, _ := tr.host(reg, kind, name, group, namespace, version, "r"); h2 != h {
			t.Fatalf("host not deterministic: %q then %q", h, h2)
		}
	})
}
