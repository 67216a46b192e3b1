package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/merge"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start-up progress: until ready, each registry's state is logged every interval (a failing one
// with its error, a synced one with its counts and the rate), and nothing once ready.
func TestStartupProgressLogs(t *testing.T) {
	var mu sync.Mutex
	ready := false
	statuses := []merge.RegistryStatus{
		{Name: "zk", AwaitingInitialSync: true, LastError: "dial tcp 127.0.0.1:1: connection refused"},
		{Name: "big", Synced: true, ReportedServices: 5000, ReportedInstances: 20000},
	}
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		logStartupProgress(ctx, func() (bool, string) { mu.Lock(); defer mu.Unlock(); return ready, "" },
			func() []merge.RegistryStatus { mu.Lock(); defer mu.Unlock(); return statuses }, log, 20*time.Millisecond)
		close(done)
	}()
	testkit.WaitUntil(t, 10*time.Second, "two registry=zk log lines", func() bool { return strings.Count(logs.String(), "registry=zk") >= 2 })
	out := logs.String()
	for _, w := range []string{`msg="start-up: registry not synced yet, failing" registry=zk`, `error="dial tcp 127.0.0.1:1: connection refused"`,
		`msg="start-up: registry synced" registry=big`, "services=5000 instances=20000"} {
		if !strings.Contains(out, w) {
			t.Errorf("progress log lacks %q:\n%s", w, out)
		}
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("progress logging did not stop once ready")
	}
}
