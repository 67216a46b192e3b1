package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const ordersOne = `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
`

const ordersTwoAndPayments = `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
      - {address: 10.1.0.2, ports: {http: 8080}}
  - name: payments
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.2.0.1, ports: {http: 8080}}
`

// diff renders two configurations and prints what a change would do to the served resources;
// history and diff --admin ask a running bridge (with an admin token) what it changed and how
// it differs from a configuration.
func TestDiffAndHistoryCommands(t *testing.T) {
	dir := t.TempDir()
	servicesPath := writeFile(t, dir, "services.yaml", ordersOne)
	next := writeFile(t, dir, "next-services.yaml", ordersTwoAndPayments)
	tokenFile := writeFile(t, dir, "token", "t0ken\n")
	cfg := func(name, services string) string {
		return writeFile(t, dir, name, fmt.Sprintf("registries:\n- name: shop\n  type: file\n  file: {path: %s}\nadmin:\n  token: {file: %s}\n", services, tokenFile))
	}
	a, b := cfg("a.yaml", servicesPath), cfg("b.yaml", next)

	code, stdout, stderr := runCLI(t, "diff", "--config", a, "--config", b, "--exit-code")
	if code != 1 {
		t.Fatalf("diff --exit-code of differing configs exited %d\n%s\n%s", code, stdout, stderr)
	}
	for _, w := range []string{"+++ " + b + ": ServiceEntry shop/orders.file", "+  - address: 10.1.0.2", "+++ " + b + ": ServiceEntry shop/payments.file", "+kind: ServiceEntry"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("diff lacks %q:\n%s", w, stdout)
		}
	}
	if !strings.Contains(stderr, "1 created, 1 changed, 0 deleted") {
		t.Errorf("summary: %s", stderr)
	}
	if code, stdout, _ := runCLI(t, "diff", "--config", a, "--config", a, "--exit-code"); code != 0 || stdout != "" {
		t.Errorf("diff of a config with itself: exit %d, output %q", code, stdout)
	}
	if code, _, stderr := runCLI(t, "diff", "--config", a); code != 2 || !strings.Contains(stderr, "--config OLD --config NEW") {
		t.Errorf("diff with one config and no --admin: exit %d: %s", code, stderr)
	}

	// A running bridge on a, then its services file changes to next's content.
	mcpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var log bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--config", a, "--mcp-addr", mcpAddr, "--admin-addr", adminAddr}, io.Discard, &log)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	testkit.WaitUntil(t, 20*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if code, _, stderr := runCLI(t, "history", "--admin", adminAddr); code != 1 || !strings.Contains(stderr, "401 Unauthorized") {
		t.Fatalf("history without the token: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(ordersTwoAndPayments), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	testkit.WaitUntil(t, 20*time.Second, "the change in the history", func() bool {
		_, out, _ = runCLI(t, "history", "--admin", adminAddr, "--token-file", tokenFile, "--kind", "serviceentry", "--name", "shop/orders.file")
		return strings.Count(out, "\n# ") >= 1
	})
	for _, w := range []string{"changed ServiceEntry shop/orders.file: push 2: registry events shop×1 (2 services changed)", "+  - address: 10.1.0.2",
		"created ServiceEntry shop/orders.file: push 1: start-up"} {
		if !strings.Contains(out, w) {
			t.Errorf("history lacks %q:\n%s", w, out)
		}
	}
	// The running bridge now serves b's resources: no difference.
	code, stdout, stderr = runCLI(t, "diff", "--admin", adminAddr, "--token-file", tokenFile, "--config", b, "--exit-code")
	if code != 0 || stdout != "" {
		t.Errorf("diff --admin against the config it serves: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The old content, under another file, against what runs now.
	old := cfg("old.yaml", writeFile(t, dir, "old-services.yaml", ordersOne))
	code, stdout, _ = runCLI(t, "diff", "--admin", adminAddr, "--token-file", tokenFile, "--config", old)
	if code != 0 || !strings.Contains(stdout, "-  - address: 10.1.0.2") || !strings.Contains(stdout, "--- running: ServiceEntry shop/payments.file") {
		t.Errorf("diff --admin against the old config: exit %d\n%s", code, stdout)
	}
}
