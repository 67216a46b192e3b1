package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/state"
)

// stateFaults are the ways a state file stops being writable: the file system full, or read-only
// (an unwritable directory for root, which ignores permission bits). fault makes the file system
// at dir fail; mend undoes it.
var stateFaults = []struct {
	name       string
	fault      func(t *testing.T, dir string)
	mend       func(t *testing.T, dir string)
	wantReason string // in the reported error
}{
	{"disk full", fillDisk, func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
			t.Fatal(err)
		}
	}, "no space left on device"},
	{"read-only", func(t *testing.T, dir string) { run(t, "mount", "-o", "remount,ro", dir) },
		func(t *testing.T, dir string) { run(t, "mount", "-o", "remount,rw", dir) }, "read-only file system"},
}

// TestStateFileUnwritable is issue 17's "disk full / unwritable state file": the state file lives
// on a 64 KiB tmpfs, which the test fills up (or remounts read-only) while the services keep
// changing. Asserted: the failure is reported (/debug/registries' state.lastError names the
// cause, mcp_bridge_state_writes_total{result="error"} counts it, the log says so); the bridge
// keeps serving the changes; the last good file is left byte for byte and still loads, with no
// temporary file left beside it; once the file system is mended the next write succeeds and the
// error clears.
func TestStateFileUnwritable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (the test environment runs the tests as root)")
	}
	bin := suite.Build(t, bridgePackage)
	for _, f := range stateFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			const ns = "statefault"
			dir := t.TempDir()
			run(t, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir)
			t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
			stateFile := filepath.Join(dir, "state.json.gz")
			services := writeFile(t, t.TempDir(), "services.yaml", churnServices(0))
			b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin,
				Config: fileRegistryConfig(ns, services, fmt.Sprintf("state: {file: %q, interval: 200ms}\n", stateFile))})
			servers.WaitFor(t, 10*time.Second, "the first state file write", func() error {
				st, err := bridgeStateStatus(b)
				if err == nil && (st.Writes == 0 || st.LastError != "") {
					err = fmt.Errorf("state status %+v, want a successful write", st)
				}
				return err
			})
			good, err := os.ReadFile(stateFile)
			if err != nil {
				t.Fatal(err)
			}

			f.fault(t, dir)
			faultAt := time.Now()
			replaceFile(t, services, churnServices(1))
			servers.WaitFor(t, 10*time.Second, "the bridge to serve the change made while the state file cannot be written", func() error {
				return bridgeServesChurn(t, b, ns, 1)
			})
			var st state.Status
			servers.WaitFor(t, 10*time.Second, "the failed write to be reported", func() error {
				if st, err = bridgeStateStatus(b); err != nil {
					return err
				}
				if !strings.Contains(st.LastError, f.wantReason) {
					return fmt.Errorf("state lastError %q, want it to name %q", st.LastError, f.wantReason)
				}
				return nil
			})
			reported := time.Since(faultAt)
			if n := metricSum(bridgeMetrics(t, b), "mcp_bridge_state_writes_total", map[string]string{"result": "error"}); n < 1 {
				t.Errorf("mcp_bridge_state_writes_total{result=\"error\"} is %v, want at least 1", n)
			}
			if !strings.Contains(b.Log(), "cannot write the state file") {
				t.Errorf("the bridge's log does not report the failed write")
			}
			time.Sleep(time.Second) // several more write attempts (every 200 ms, then backing off)
			if now, err := os.ReadFile(stateFile); err != nil || !bytes.Equal(now, good) {
				t.Errorf("the last good state file changed during the fault (err %v)", err)
			}
			if _, err := state.Load(stateFile); err != nil {
				t.Errorf("the last good state file no longer loads: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 2 { // the file (and the filler)
				t.Errorf("files left in the state directory: %v", left)
			}
			t.Logf("measure: %s: reported %v after the fault (%d write errors so far): %s", f.name, reported.Round(time.Millisecond), st.WriteErrors, st.LastError)

			f.mend(t, dir)
			mendedAt := time.Now()
			servers.WaitFor(t, 30*time.Second, "a successful write once mended", func() error {
				st, err := bridgeStateStatus(b)
				if err == nil && (st.LastError != "" || !st.LastWrite.After(mendedAt)) {
					err = fmt.Errorf("state status %+v, want a write after the mend and no error", st)
				}
				return err
			})
			saved, err := state.Load(stateFile)
			if err != nil {
				t.Fatalf("the state file written after the mend does not load: %v", err)
			}
			if n := len(saved.Registries); n != 1 || len(saved.Registries[0].Services) != 5 {
				t.Errorf("the state file after the mend holds %d registries (want 1 with the 5 services of the change)", n)
			}
			t.Logf("measure: %s: written again %v after the mend", f.name, time.Since(mendedAt).Round(time.Millisecond))
		})
	}
}

// fillDisk writes a filler file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// bridgeStateStatus reads the state part of the bridge's /debug/registries.
func bridgeStateStatus(b *servers.Bridge) (state.Status, error) {
	var page struct {
		State state.Status `json:"state"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/registries")
	if err != nil {
		return page.State, err
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return page.State, fmt.Errorf("decoding /debug/registries: %w", err)
	}
	return page.State, nil
}
