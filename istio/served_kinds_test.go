package istio

import (
	"strings"
	"testing"
)

func TestCheckKind(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"ServiceEntry", "ServiceEntry", ""},
		{"serviceentry", "ServiceEntry", ""},
		{"WORKLOADENTRY", "WorkloadEntry", ""},
		{"VirtualService", "VirtualService", ""},
		{"Bogus", "", `unknown kind "Bogus": use one of DestinationRule, ServiceEntry, Sidecar, VirtualService, WorkloadEntry`},
		{"", "", "unknown kind"},
	} {
		got, err := CheckKind(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("CheckKind(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
