package registry

import (
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("b", 61)}, ".")
	tests := []struct {
		addr string
		want string // "" = valid; else a part of the error
	}{
		{"10.0.0.1", ""},
		{"::1", ""},
		{"2001:db8::1", ""},
		{"::ffff:10.0.0.1", ""},
		{"orders-1.example.com", ""},
		{"orders-1.example.com.", ""},
		{"Orders.Example.COM", ""},
		{"localhost", ""},
		{"1a.example.com", ""},
		{"example.1a", ""},
		{name253, ""},
		// The finding: a mistyped IP passed as a DNS name and translate dropped the endpoint.
		{"10.0.0.300", "not a valid IPv4 address"},
		{"10.0.0.300.", "not a valid IPv4 address"},
		{"010.0.0.1", "not a valid IPv4 address"},
		{"10.0.0", "last label cannot be all-numeric"},
		{"host.123", "last label cannot be all-numeric"},
		{"10.0.0.1:8080", "looks like address:port"},
		{"orders:8080", "looks like address:port"},
		{"[::1]", "without brackets"},
		{"[::1]:80", "without brackets"},
		{"fe80::1%eth0", "has a zone"},
		{"::1::2", "not a valid IPv6 address"},
		{"my_host.example.com", `label "my_host"`},
		{"-a.example.com", `label "-a"`},
		{"a..b", `label ""`},
		{".", `label ""`},
		{"", "empty"},
		{"a b", `label "a b"`},
		{"ünï.example", `label "ünï"`},
		{strings.Repeat("a", 64) + ".com", "label"},
		{name253 + "b", "more than 253"},
	}
	for _, tt := range tests {
		err := CheckAddress(tt.addr)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckAddress(%q) = %v, want valid", tt.addr, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckAddress(%q) accepted, want an error containing %q", tt.addr, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("CheckAddress(%q) = %v, want an error containing %q", tt.addr, err, tt.want)
		}
	}
}
