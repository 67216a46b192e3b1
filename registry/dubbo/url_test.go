package dubbo

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   *URL
		reason string
	}{
		{
			name: "provider",
			in:   "dubbo://10.0.0.1:20880/com.foo.Bar?version=1.0&group=g&methods=a,b",
			want: &URL{Protocol: "dubbo", Host: "10.0.0.1", Port: 20880, Path: "com.foo.Bar",
				Params: map[string]string{"version": "1.0", "group": "g", "methods": "a,b"}},
		},
		{
			name: "bare IPv6 as Java Dubbo writes it: the last colon separates the port",
			in:   "tri://2001:db8::1:50051/com.foo.Bar",
			want: &URL{Protocol: "tri", Host: "2001:db8::1", Port: 50051, Path: "com.foo.Bar", Params: map[string]string{}},
		},
		{
			name: "bracketed IPv6",
			in:   "dubbo://[2001:db8::1]:20880/com.foo.Bar",
			want: &URL{Protocol: "dubbo", Host: "2001:db8::1", Port: 20880, Path: "com.foo.Bar", Params: map[string]string{}},
		},
		{
			name: "duplicate key: last wins; key without '=' is empty; ';' separates too",
			in:   "dubbo://h:1/p?a=1&a=2&flag;b=x=y",
			want: &URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "p",
				Params: map[string]string{"a": "2", "flag": "", "b": "x=y"}},
		},
		{
			name: "default. keys provide the plain key unless it is set",
			in:   "dubbo://h:1/p?default.timeout=5&default.retries=2&retries=0",
			want: &URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "p",
				Params: map[string]string{"default.timeout": "5", "timeout": "5", "default.retries": "2", "retries": "0"}},
		},
		{
			name: "user info: username kept, password dropped",
			in:   "override://admin:secret@0.0.0.0/com.foo.Bar?weight=1",
			want: &URL{Protocol: "override", Username: "admin", Host: "0.0.0.0", Path: "com.foo.Bar",
				Params: map[string]string{"weight": "1"}},
		},
		{
			name: "empty query; a fragment in the body is ignored (as Dubbo)",
			in:   "consumer://10.0.0.2/com.foo.Bar#frag?",
			want: &URL{Protocol: "consumer", Host: "10.0.0.2", Path: "com.foo.Bar", Params: map[string]string{}},
		},
		{name: "no scheme", in: "10.0.0.1:20880/com.foo.Bar", reason: ReasonBadURL},
		{name: "empty", in: "", reason: ReasonBadURL},
		{name: "scheme with a slash", in: "du/bbo://h:1/p", reason: ReasonBadURL},
		{name: "port out of range", in: "dubbo://h:0/p", reason: ReasonBadPort},
		{name: "port not a number", in: "dubbo://h:x1/p", reason: ReasonBadPort},
		{name: "unterminated bracket", in: "dubbo://[::1:20880/p", reason: ReasonBadHost},
		{name: "IPv4 in brackets", in: "dubbo://[10.0.0.1]:1/p", reason: ReasonBadHost},
		{name: "IPv6 without port reads a broken host, as in Dubbo", in: "dubbo://fe80::1/p", reason: ReasonBadHost},
		{name: "control character", in: "dubbo://h:1/p?a=\x01", reason: ReasonBadURL},
		{name: "invalid UTF-8", in: "dubbo://h:1/p?a=\xff", reason: ReasonBadEncoding},
		{name: "too long", in: "dubbo://h:1/p?a=" + strings.Repeat("x", MaxURLLength), reason: ReasonTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.reason != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want an error with reason %s", tt.in, got, tt.reason)
				}
				if r := Reason(err); r != tt.reason {
					t.Fatalf("reason %q (%v), want %q", r, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseZNodeName(t *testing.T) {
	// Java's URLEncoder writes spaces as '+'; the decoded value keeps the space.
	u, err := ParseZNodeName("dubbo%3A%2F%2F10.0.0.1%3A20880%2Fcom.foo.Bar%3Fowner%3Dteam+a%26methods%3Da%2Cb")
	if err != nil {
		t.Fatal(err)
	}
	if u.Params["owner"] != "team a" || u.Params["methods"] != "a,b" || u.Port != 20880 {
		t.Errorf("got %+v", u)
	}
	if _, err := ParseZNodeName(strings.Repeat("%41", MaxURLLength+1)); Reason(err) != ReasonTooLong {
		t.Errorf("huge name: %v, want reason %s", err, ReasonTooLong)
	}
}

func TestURLStringHidesSecrets(t *testing.T) {
	u, err := ParseURL("dubbo://[::1]:20880/com.foo.Bar?token=abc&b=2&a=1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.String(), "dubbo://[::1]:20880/com.foo.Bar?a=1&b=2&token=***"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestServiceKeyString(t *testing.T) {
	for _, tt := range []struct {
		k    ServiceKey
		want string
	}{
		{ServiceKey{Interface: "com.foo.Bar"}, "com.foo.Bar"},
		{ServiceKey{Interface: "com.foo.Bar", Group: "g", Version: "1.0"}, "g/com.foo.Bar:1.0"},
		{ServiceKey{Interface: "com.foo.Bar", Version: "1.0"}, "com.foo.Bar:1.0"},
	} {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.k, got, tt.want)
		}
	}
}

func TestURLFromParams(t *testing.T) {
	// How a Nacos Dubbo 2 instance looks: ip/port fields, metadata = URL parameters + protocol, path.
	u := URLFromParams("", "[2001:db8::5]", 20880, "", map[string]string{"interface": "com.foo.Bar", "version": "1.0"})
	p, err := NewProvider(u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != (ServiceKey{Interface: "com.foo.Bar", Version: "1.0"}) || p.Instance.ID != "[2001:db8::5]:20880" || p.Ports[0].Name != "dubbo" {
		t.Errorf("got %+v", p)
	}
}
