// Package servers starts the real servers the tests run against (etcd, kube-apiserver, Istiod,
// ZooKeeper, the Nacos/Eureka-protocol server, the bridge itself) on loopback, on free ports, and
// stops them by PID when the test ends. Every process's output goes to a log file that is printed
// when the test fails and kept under $MCP_BRIDGE_E2E_LOGS when that is set.
package servers

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on and that no other caller in
// this process has been given. Other processes on these machines hold the usual ports, so every
// server gets one of these.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return port
}

// Ports come from below the kernel's ephemeral range. A port the kernel hands out for
// 127.0.0.1:0 is free only until the next outgoing connection on the machine: a server picked it,
// and before it bound the port Istiod's own connection to the kube-apiserver or the bridge
// could take it as its source port ("bind: address already in use", seen in parallel TLS tests).
// Outgoing connections never use ports below the ephemeral range.
const (
	portRangeLow  = 20000
	portRangeHigh = 32768 // exclusive; Linux's default ephemeral range starts here
)

// handedOut is process-wide because ports are: parallel tests must not be given the same port
// in the moment between FreePort and their server's bind.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func freePort() (int, error) {
	low, high := portRangeLow, min(portRangeHigh, ephemeralLow())
	for attempt := 0; attempt < 200 && high-low > 1000; attempt++ {
		port := low + rand.IntN(high-low)
		if reserve(port) {
			return port, nil
		}
	}
	// An unusual ephemeral range: fall back to the kernel's choice.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// reserve hands out port if no one in this process has it and nothing listens on it.
func reserve(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports[port] {
		return false
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	handedOut.ports[port] = true
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return portRangeHigh
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 {
		return portRangeHigh
	}
	return lo
}

// FreePortRun returns the first of n consecutive free ports, for servers that derive ports from a
// base (Polaris' Nacos gRPC port is its HTTP port + 1000, so callers ask for that separately).
func FreePortRun(t testing.TB, n int) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		base := FreePort(t)
		ok := base+n <= 65535
		for i := 1; i < n && ok; i++ {
			ok = reserve(base + i)
		}
		if ok {
			return base
		}
	}
	t.Fatalf("servers: no run of %d free ports found", n)
	return 0
}

// RepoRoot returns the root of this repository (the directory holding the bridge's go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return dir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/mcp-bridge/mcp-bridge\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no mcp-bridge go.mod above the working directory")
		}
		dir = parent
	}
}

// Tool returns the cache directory holding a real server built by e2e/tools/build.sh (istio,
// kubernetes, etcd, polaris), building it first if the cache lacks it. build.sh holds a file
// lock, so test binaries of several packages running at once build each tool only once.
func Tool(t testing.TB, name string) string {
	t.Helper()
	dir, err := tool(name)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return dir
}

func tool(name string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "e2e", "tools", "build.sh"), name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// Process is a server started for a test.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start runs cmd as a named server: in its own process group, output to a log file, stopped with
// SIGKILL (after SIGTERM and a short grace) when the test ends. On failure the log's tail is printed.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := startProcess(t, name, cmd)
	stopOnCleanup(t, p, 5*time.Second)
	return p
}

func startProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := launch(name, cmd, testLogDir(t))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Logf("servers: started %s (pid %d), log %s", name, p.PID(), p.LogPath)
	return p
}

// testLogDir is where the logs of a test's servers go: $MCP_BRIDGE_E2E_LOGS/<test> when set (kept
// after the run, e.g. as CI artifacts), else the test's temporary directory.
func testLogDir(t testing.TB) string {
	if dir := os.Getenv("MCP_BRIDGE_E2E_LOGS"); dir != "" {
		return filepath.Join(dir, sanitize(t.Name()))
	}
	return t.TempDir()
}

// stopOnCleanup stops p when the test ends and prints its log if the test failed.
func stopOnCleanup(t testing.TB, p *Process, grace time.Duration) {
	t.Cleanup(func() {
		p.Stop(grace)
		if t.Failed() {
			p.dumpLog(t)
		}
	})
}

// launch starts cmd with its output in a log file under logDir. It needs no test, so servers
// shared by all the tests of a binary (see Suite) can outlive the test that first asked for them.
func launch(name string, cmd *exec.Cmd, logDir string) (*Process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory for %s: %w", name, err)
	}
	logPath := filepath.Join(logDir, fmt.Sprintf("%s-%d.log", sanitize(name), time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log file for %s: %w", name, err)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs it. grace 0 kills at once.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := -p.cmd.Process.Pid
	if grace > 0 {
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		// A paused process (Pause) acts on SIGTERM only once continued.
		_ = syscall.Kill(pgid, syscall.SIGCONT)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process (not its group), e.g. SIGSTOP to freeze a server mid-test.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

// Pause freezes the process (SIGSTOP to its group): its sockets stay open and the kernel keeps
// accepting connections into their backlog, but nothing answers. This is a hung server, not a
// dead one: clients see no error, only silence, until their own timeouts fire.
func (p *Process) Pause() error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pausing %s (pid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// Resume continues a paused process (SIGCONT to its group).
func (p *Process) Resume() error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("resuming %s (pid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

func (p *Process) dumpLog(t testing.TB) {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return
	}
	const tail = 8000
	if len(b) > tail {
		b = append([]byte("...\n"), b[len(b)-tail:]...)
	}
	t.Logf("---- %s log (%s) ----\n%s\n---- end of %s log ----", p.Name, p.LogPath, b, p.Name)
}

// WaitFor polls check until it returns nil or timeout passes, then fails the test with the last error.
// It backs off (20 ms growing to 500 ms) because it waits for processes to start, where a tight
// poll only adds load; tests that time how fast a change arrives use testkit.WaitFor, which polls
// at a fixed interval so that no growing delay is measured with the change.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := Poll(timeout, check); err != nil {
		t.Fatalf("servers: %s: %v", what, err)
	}
}

// Poll is WaitFor without a test: it returns the last error after timeout.
func Poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 20 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		time.Sleep(delay)
		if delay < 500*time.Millisecond {
			delay = delay * 3 / 2
		}
	}
}

// DialCheck returns a check that succeeds once something accepts TCP connections at addr.
func DialCheck(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Tail returns the last n bytes of the process's log, for error messages.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

// WaitReady polls check like Poll, but gives up at once if the process exits meanwhile: a server
// that crashed at start-up fails the test in milliseconds, with the tail of its log, instead of
// after the whole timeout.
func (p *Process) WaitReady(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 20 * time.Millisecond
	for {
		if exited, werr := p.Exited(); exited {
			return fmt.Errorf("%s exited during start-up (%v); log tail:\n%s", p.Name, werr, p.Tail(3000))
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w; log tail:\n%s", p.Name, timeout, err, p.Tail(3000))
		}
		select {
		case <-p.done:
		case <-time.After(delay):
		}
		if delay < 250*time.Millisecond {
			delay = delay * 3 / 2
		}
	}
}
