package main

import (
	"fmt"
	"strings"
	"testing"
)

// render is documented to exit 1 when anything would be dropped on the way to Istiod, 2 on a
// usage error. Each case here once exited 0.
func TestRenderFailsOnWhatWouldBeLost(t *testing.T) {
	dir := t.TempDir()
	config := func(name, services string) string {
		path := writeFile(t, dir, name+"-services.yaml", services)
		return writeFile(t, dir, name+".yaml", fmt.Sprintf("registries:\n- name: shop\n  type: file\n  file: {path: %s}\n", path))
	}
	// A mistyped IP used to pass as a DNS name; translate then dropped the endpoint and render
	// printed a ServiceEntry without it.
	mistypedIP := config("mistyped", `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
      - {address: 10.0.0.300, ports: {http: 8080}}
`)
	// A host name among IP addresses: the service resolves statically and the name is dropped.
	mixed := config("mixed", `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
      - {address: orders-2.example.com, ports: {http: 8080}}
`)
	good := config("good", `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
`)
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"mistyped IP fails the file, with its line", []string{"render", "--config", mistypedIP, "--timeout", "2s"}, 1,
			[]string{`registry "shop" was not read`, "line 7", `"10.0.0.300" is not a valid IPv4 address`}},
		{"an endpoint left out fails", []string{"render", "--config", mixed}, 1,
			[]string{"would be served without an endpoint", "hostname-address", "orders-2.example.com"}},
		{"unknown kind is a usage error listing the kinds", []string{"render", "--config", good, "--kind", "Bogus"}, 2,
			[]string{`unknown kind "Bogus"`, "DestinationRule, ServiceEntry, Sidecar, VirtualService, WorkloadEntry"}},
		{"kind is matched case-insensitively", []string{"render", "--config", good, "--kind", "serviceentry"}, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tt.code == 0 && !strings.Contains(stdout, "orders.file") {
				t.Errorf("stdout lacks the ServiceEntry:\n%s", stdout)
			}
		})
	}
}
