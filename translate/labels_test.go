package translate

import (
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

func TestSanitizeLabelValue(t *testing.T) {
	long := strings.Repeat("a", 100)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"v1", "v1"},
		{"1.0.0", "1.0.0"},
		{"a_b-c.d", "a_b-c.d"},
		{"value with spaces", "value-with-spaces"},
		{"-edge-", "edge"},
		{"_x_", "x"},
		{"10.0.0.1:20880", "10.0.0.1-20880"},
		{"灰度", "xn--wxtw90b"},
		{"!!!", "x-" + shortHash("!!!")},
		{long, strings.Repeat("a", 54) + "-" + shortHash(long)},
		{"\xff\xfe", "x-" + shortHash("\xff\xfe")},
	} {
		got := SanitizeLabelValue(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeLabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !istio.ValidLabelValue(got) {
			t.Errorf("SanitizeLabelValue(%q) = %q is not a valid value", tc.in, got)
		}
	}
}

func TestSanitizeLabelKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"app", "app", true},
		{"dubbo.tag", "dubbo.tag", true},
		{"example.com/team", "example.com/team", true},
		{"Example.COM/Team", "example.com/Team", true},
		{"a/b/c", "a/b-c", true},
		{"has space", "has-space", true},
		{"_leading", "leading", true},
		{"", "", false},
		{"!!!", "", false},
		{"/name", "name", true},
		{"bad prefix!/name", "bad-prefix/name", true},
		{strings.Repeat("k", 70), strings.Repeat("k", 54) + "-" + shortHash(strings.Repeat("k", 70)), true},
	} {
		got, ok := SanitizeLabelKey(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("SanitizeLabelKey(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && !istio.ValidLabelKey(got) {
			t.Errorf("SanitizeLabelKey(%q) = %q is not a valid key", tc.in, got)
		}
	}
}

func TestSanitizeLabels(t *testing.T) {
	var n notes
	in := map[string]string{
		"version": "v1", "timestamp": "1", "pid": "2", "preserved.heart.beat.interval": "5000",
		"has-space": "a", "has space": "b", "istio.io/rev": "canary", "": "x", "weird key": "ok",
	}
	got := sanitizeLabels(in, dropOnly("timestamp", "pid", "preserved.*"), &n, nil)
	want := map[string]string{"version": "v1", "has-space": "a", "weird-key": "ok"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	ws := n.warnings(istio.Warning{})
	var reasons []string
	for _, w := range ws {
		reasons = append(reasons, w.Reason)
	}
	if strings.Join(reasons, ",") != "label-conflict,label-dropped,label-reserved,label-rewritten" {
		t.Errorf("warnings %v", ws)
	}
	// A drop entry matches a key as the registry gave it too, not only as it would be emitted.
	if m := sanitizeLabels(map[string]string{"weird key": "ok", "version": "v1"}, dropOnly("weird key"), &n, nil); len(m) != 1 || m["version"] != "v1" {
		t.Errorf("drop by the raw key: got %v", m)
	}
	// Nothing valid left: nil, not an empty map (proto encodes both the same; nil is cheaper).
	if m := sanitizeLabels(map[string]string{"pid": "1"}, dropOnly("pid"), &n, nil); m != nil {
		t.Errorf("got %v, want nil", m)
	}
}

func TestHostField(t *testing.T) {
	for _, tc := range []struct {
		in           string
		dots, keepUC bool
		want         string
	}{
		{"DEFAULT_GROUP", true, false, "default-group"},
		{"DEFAULT_GROUP", true, true, "DEFAULT-GROUP"},
		{"1.0.0", false, false, "1-0-0"},
		{"org.apache.Demo", true, false, "org.apache.demo"},
		{"com.Foo$Bar", true, false, "com.foo-bar"},
		{"_x_", true, false, "x"},
		{"订单", true, false, "xn--4kr132k"},
		{"a..b", true, false, "a..b"}, // left for checkHost to refuse
	} {
		if got := hostField(tc.in, tc.dots, tc.keepUC); got != tc.want {
			t.Errorf("hostField(%q, %v, %v) = %q, want %q", tc.in, tc.dots, tc.keepUC, got, tc.want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"a.b", true},
		{"svc", true},
		{"Order.DEFAULT-GROUP.public.nacos", true},
		{"xn--3rvy37a.nacos", true},
		{"", false},
		{"a..b", false},
		{"-a.b", false},
		{"a.b-", false},
		{"a_b.c", false},
		{"a.123", false},
		{"*.a.b", false},
		{strings.Repeat("x", 64) + ".c", false},
		{strings.Repeat("abcdefgh.", 27) + "com", true},  // 246 characters
		{strings.Repeat("abcdefgh.", 28) + "com", false}, // 255: Istio's limit, but not a DNS name
	} {
		err := istio.CheckHost(tc.host)
		if (err == nil) != tc.ok {
			t.Errorf("checkHost(%q) = %v, want ok=%v", tc.host, err, tc.ok)
		}
	}
}

func TestFitSubdomain(t *testing.T) {
	label := strings.Repeat("a", 63)
	for _, in := range []string{
		"short.name",
		strings.Repeat(label+".", 4) + "x",         // 257: cut inside the last full label
		strings.Repeat("b.", 120) + label,          // many short labels, then a long one
		strings.Repeat(label+".", 3) + label + "-", // ends in '-' after the cut
	} {
		got := fitSubdomain(in, 253)
		if !istio.IsDNSSubdomain(got) {
			t.Errorf("fitSubdomain(%d chars) = %q (%d chars) is not a DNS subdomain", len(in), got, len(got))
		}
		if len(in) <= 253 && got != in {
			t.Errorf("fitSubdomain changed %q, which fits", in)
		}
	}
}

// dropOnly keeps every key but those given (a trailing "*" a prefix): the "all" mode's filter.
func dropOnly(keys ...string) func(raw, key string) bool {
	s := newKeySet(keys)
	return func(raw, key string) bool { return !s.match(raw) && !s.match(key) }
}
