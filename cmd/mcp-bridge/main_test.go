package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
`)
	good := writeFile(t, dir, "good.yaml", fmt.Sprintf("registries:\n- name: shop\n  type: file\n  file: {path: %s}\n", services))
	// A host label longer than 63 characters: Istiod would drop the ServiceEntry.
	tooLong := writeFile(t, dir, "toolong.yaml", `
services:
  - name: `+strings.Repeat("x", 70)+`
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.2, ports: {http: 8080}}
`)
	invalid := writeFile(t, dir, "invalid.yaml", fmt.Sprintf("registries:\n- name: shop\n  type: file\n  file: {path: %s}\n", tooLong))
	broken := writeFile(t, dir, "broken.yaml", "registries:\n- name: shop\n  type: file\n  file: {path: x, bogus: 1}\n")
	missingServices := writeFile(t, dir, "missing.yaml", fmt.Sprintf("registries:\n- name: shop\n  type: file\n  file: {path: %s}\n", filepath.Join(dir, "nope.yaml")))

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		notStdout  []string
		jsonOutput bool
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"mcp-bridge "}},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"serve", "render", "validate"}},
		{name: "unknown command", args: []string{"serv"}, code: 2, stderr: []string{`unknown command "serv"`}},
		{name: "unknown flag", args: []string{"render", "--formt", "json"}, code: 2, stderr: []string{"formt"}},
		{name: "stray argument", args: []string{"validate", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{name: "validate a good config", args: []string{"validate", "--config", good}, code: 0, stdout: []string{"configuration is valid: 1 registries (shop)"}},
		{name: "validate a broken config", args: []string{"validate", "--config", broken}, code: 1, stderr: []string{"line 4", `unknown field "bogus"`}},
		{name: "validate a missing file", args: []string{"validate", "--config", filepath.Join(dir, "absent.yaml")}, code: 1, stderr: []string{"reading config"}},
		{name: "render the embedded example", args: []string{"render"}, code: 0,
			stdout: []string{"kind: ServiceEntry", "org.apache.dubbo.samples.api.greetingsservice-1-0-0", "tcp-dubbo", "grpc-tri", "resolution: STATIC"}},
		{name: "render a file registry", args: []string{"render", "--config", good}, code: 0, stdout: []string{"orders.file", "10.1.0.1", "number: 8080"}},
		{name: "render as JSON", args: []string{"render", "--config", good, "--format", "json"}, code: 0, stdout: []string{`"kind": "List"`, `"orders.file"`}, jsonOutput: true},
		{name: "render one kind", args: []string{"render", "--config", good, "--kind", "WorkloadEntry"}, code: 0, notStdout: []string{"orders.file"}},
		{name: "render with versions", args: []string{"render", "--config", good, "--versions"}, code: 0, stdout: []string{"resourceVersion:"}},
		{name: "render fails when a resource would be dropped", args: []string{"render", "--config", invalid}, code: 1,
			stderr: []string{"would be dropped", "invalid-host"}},
		{name: "render fails when a registry cannot be read", args: []string{"render", "--config", missingServices, "--timeout", "2s"}, code: 1,
			stderr: []string{`registry "shop" was not read`}},
		{name: "render rejects an unknown format", args: []string{"render", "--format", "toml"}, code: 2, stderr: []string{`--format "toml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(stdout, w) {
					t.Errorf("stdout has %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tt.jsonOutput && !json.Valid([]byte(stdout)) {
				t.Errorf("stdout is not valid JSON:\n%s", stdout)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve with the embedded example: becomes ready, serves every admin page, and stops cleanly
// when its context ends (as on SIGTERM).
func TestServeEmbeddedExample(t *testing.T) {
	mcpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--mcp-addr", mcpAddr, "--admin-addr", adminAddr}, io.Discard, &stderr)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready after 20s; log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	pages := []struct {
		path string
		want []string
	}{
		{"/healthz", []string{"ok"}},
		{"/metrics", []string{"mcp_bridge_pushes_total", `mcp_bridge_resources{kind="ServiceEntry"}`, "mcp_bridge_registry_event_to_push_seconds", `mcp_bridge_registry_synced{registry="example"} 1`}},
		{"/debug/resources", []string{"kind: ServiceEntry", "resourceVersion:"}},
		{"/debug/resources?kind=WorkloadEntry", nil},
		{"/debug/registries", []string{`"example"`}},
		{"/debug/clients", nil},
		{"/debug/invalid", []string{`"invalid"`}},
		{"/", []string{"/debug/invalid"}},
	}
	for _, p := range pages {
		code, body := get(p.path)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d: %s", p.path, code, body)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q:\n%.2000s", p.path, w, body)
			}
		}
	}
	if _, body := get("/debug/resources?kind=WorkloadEntry"); strings.Contains(body, "kind: ServiceEntry") {
		t.Errorf("?kind=WorkloadEntry returned ServiceEntries")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after cancellation; log:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancellation")
	}
}

// The MCP and admin listeners are refused cleanly when their address is taken.
func TestServeAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, stderr := runCLI(t, "serve", "--mcp-addr", l.Addr().String(), "--admin-addr", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "MCP listener on "+l.Addr().String()) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// A bridge waiting for an unreachable registry's first sync is alive but not ready: the gRPC
// health service says so separately, so a Kubernetes liveness probe does not restart it in a loop
// while its readiness probe keeps Istiod's traffic away.
func TestHealthSeparatesLivenessFromReadiness(t *testing.T) {
	dead := freeAddr(t) // nothing listens here
	cfg := writeFile(t, t.TempDir(), "config.yaml", fmt.Sprintf(
		"registries:\n- name: zk\n  type: zookeeper\n  zookeeper:\n    servers: [%q]\n    reconnectBackoff: 50ms\n", dead))
	r := startServe(t, cfg)
	r.waitFor("liveness SERVING", 10*time.Second, func() error {
		return r.serviceHealth(livenessService, healthpb.HealthCheckResponse_SERVING)
	})
	// Give the adapter time to fail its dials; readiness must stay NOT_SERVING all along.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := r.serviceHealth("", healthpb.HealthCheckResponse_NOT_SERVING); err != nil {
			t.Fatal(err)
		}
		if code, _ := r.get("/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d while the only registry was never read", code)
		}
	}
	if _, body := r.get("/readyz"); !strings.Contains(body, "zk") {
		t.Errorf("/readyz does not name the registry it waits for: %s", body)
	}
}
