package merge_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
)

// TestFileRegistryThroughMerger runs the real file adapter into a real merger on the system
// clock: a malformed edit keeps the last good state served and shows its line on Status.
func TestFileRegistryThroughMerger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("services:\n  - name: orders\n    instances:\n      - address: 10.0.0.1\n        ports: {http: 8080}\n")

	m, err := merge.New(merge.Options{
		Key:      func(s *registry.Service) string { return s.Name },
		Debounce: merge.Debounce{Quiet: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := file.New(file.Config{Path: path, PollInterval: time.Hour}, registry.Options{Name: "static"})
	if err != nil {
		t.Fatal(err)
	}
	sink := m.Sink("static")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	snaps := make(chan *merge.Snapshot, 16)
	wg.Go(func() { m.Run(ctx, func(s *merge.Snapshot) { snaps <- s }) })
	wg.Go(func() {
		if err := a.Run(ctx, sink); err != nil {
			t.Errorf("file adapter: %v", err)
		}
	})

	next := func() *merge.Snapshot {
		t.Helper()
		select {
		case s := <-snaps:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no snapshot within 5s")
			return nil
		}
	}
	if s := next(); len(s.Services) != 1 || len(s.Services[0].Instances) != 1 || s.Services[0].Registry != "static" {
		t.Fatalf("first snapshot %+v", s.Services)
	}

	write("services:\n  - name: orders\n    instances:\n      - address: 10.0.0.1\n        port: 8080\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := m.Status()[0]
		if st.Protection != nil {
			if st.Protection.Reason != "failure" || !strings.Contains(st.LastError, "line 5") || st.Instances != 1 {
				t.Fatalf("status %+v; want the last good instance held and the error's line", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("malformed file never reported")
		}
		time.Sleep(5 * time.Millisecond)
	}

	write("services:\n  - name: orders\n    instances:\n" + instances(3))
	if s := next(); len(s.Services) != 1 || len(s.Services[0].Instances) != 3 {
		t.Fatalf("after the fix %+v; want 3 instances (the malformed version never served)", s.Services)
	}
	st := m.Status()[0]
	if st.Protection != nil || !st.Connected {
		t.Errorf("status after the fix %+v", st)
	}
	// The parse error is history once the file loads again: not the current lastError, but
	// shown as recovered, with when.
	if st.LastError != "" || !st.LastErrorTime.IsZero() {
		t.Errorf("lastError %q (%s) still shown after the file loaded again", st.LastError, st.LastErrorTime)
	}
	if r := st.Recovered; r == nil || !strings.Contains(r.Error, "line 5") || r.RecoveredAt.IsZero() || r.RecoveredAt.Before(r.Since) {
		t.Errorf("recovered %+v; want the parse error with its times", r)
	}
}

func instances(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "      - address: 10.0.0.%d\n        ports: {http: 8080}\n", i)
	}
	return b.String()
}
