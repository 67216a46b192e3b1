package state

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/internal/fakeclock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// fakeClock is a Clock the test moves by hand, so holds and timeouts take no real time.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New() }

// fakeSource stands in for the merge layer (merge's own tests cover its side of Source).
type fakeSource struct {
	changes chan struct{}
	mu      sync.Mutex
	rev     uint64
	synced  int
	regs    []Registry
	seen    chan struct{} // receives when Revision is read: the store has looked at a change
}

func newFakeSource(rev uint64) *fakeSource {
	return &fakeSource{changes: make(chan struct{}, 1), rev: rev, seen: make(chan struct{}, 100)}
}

func (f *fakeSource) Changes() <-chan struct{} { return f.changes }

func (f *fakeSource) Revision() (uint64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case f.seen <- struct{}{}:
	default:
	}
	return f.rev, f.synced
}

func (f *fakeSource) Collect() []Registry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.regs)
}

// change sets the state (a first sync when firstSync) and signals it, like the merger does.
func (f *fakeSource) change(instances int, firstSync bool) {
	f.mu.Lock()
	f.rev++
	if firstSync {
		f.synced++
	}
	f.regs = []Registry{{Name: "zk", Type: "zookeeper", Services: manyServices(1, instances)}}
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

type runner struct {
	t      *testing.T
	store  *Store
	clock  *fakeClock
	src    *fakeSource
	cancel context.CancelFunc
	done   chan struct{}
}

func startRunner(t *testing.T, path string, interval time.Duration) *runner {
	t.Helper()
	clock := newFakeClock()
	st, err := New(Config{File: path, Interval: interval}, Options{Clock: clock, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, store: st, clock: clock, src: newFakeSource(7), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		st.Run(ctx, r.src)
		close(r.done)
	}()
	r.settle()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// settle waits until the store has looked at the latest signal.
func (r *runner) settle() {
	r.t.Helper()
	select {
	case <-r.src.seen:
	case <-time.After(5 * time.Second):
		r.t.Fatal("the store never read the source's revision")
	}
	// Drain what earlier reads left, so the next settle waits for a new one.
	for len(r.src.seen) > 0 {
		<-r.src.seen
	}
}

// waitWrites waits until the store has made n write attempts in all.
func (r *runner) waitWrites(n uint64) Status {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := r.store.Status()
		if st.Writes >= n {
			if st.Writes > n {
				r.t.Fatalf("%d writes, want %d", st.Writes, n)
			}
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d writes after 5s, want %d", st.Writes, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// fileInstances is how many instances the file holds.
func fileInstances(t *testing.T, path string) int {
	t.Helper()
	saved, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(saved.Registries[0].Services[0].Instances)
}

func TestRunRateLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	const interval = 5 * time.Second
	r := startRunner(t, path, interval)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the restored state was written again without any change")
	}

	// A registry's first sync is written at once.
	r.src.change(1, true)
	r.waitWrites(1)
	if n := fileInstances(t, path); n != 1 {
		t.Fatalf("file holds %d instances, want 1", n)
	}

	// Changes coming every second: written at most once per interval, the latest state.
	for i := 2; i <= 4; i++ {
		r.clock.Advance(time.Second)
		r.src.change(i, false)
		r.settle()
	}
	if st := r.store.Status(); st.Writes != 1 || r.clock.Pending() != 1 {
		t.Fatalf("%d writes and %d timers 3s after the first; want 1 write and its follow-up scheduled", st.Writes, r.clock.Pending())
	}
	r.clock.Advance(2 * time.Second) // 5s after the first write
	r.waitWrites(2)
	if n := fileInstances(t, path); n != 4 {
		t.Errorf("file holds %d instances, want the latest 4", n)
	}

	// Another registry's first sync does not wait for the interval.
	r.clock.Advance(time.Second)
	r.src.change(5, true)
	r.waitWrites(2 + 1)

	// Nothing changed: a timer or a stray signal writes nothing.
	r.clock.Advance(time.Minute)
	r.src.changes <- struct{}{}
	r.settle()
	if st := r.store.Status(); st.Writes != 3 {
		t.Fatalf("%d writes without a change, want 3", st.Writes)
	}

	// Shutdown writes what is pending, without waiting for the interval.
	r.src.change(6, false)
	r.settle()
	r.cancel()
	<-r.done
	if st := r.store.Status(); st.Writes != 4 || st.LastError != "" || st.LastWriteBytes == 0 {
		t.Fatalf("status after shutdown %+v; want the pending change written", st)
	}
	if n := fileInstances(t, path); n != 6 {
		t.Errorf("file holds %d instances after shutdown, want 6", n)
	}
}

func TestRunNothingToWriteAtShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	r := startRunner(t, path, time.Second)
	r.cancel()
	<-r.done
	if st := r.store.Status(); st.Writes != 0 {
		t.Errorf("%d writes with nothing changed", st.Writes)
	}
}

// A write that fails is retried after the interval (not on every change) and reported until
// one succeeds.
func TestRunRetriesFailedWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	path := filepath.Join(dir, "state.json.gz")
	r := startRunner(t, path, 5*time.Second)
	r.src.change(1, true)
	st := r.waitWrites(1)
	if st.WriteErrors != 1 || !strings.Contains(st.LastError, "no such file or directory") {
		t.Fatalf("status %+v; want the failure reported", st)
	}
	r.src.change(2, true) // even a first sync does not retry at once while writes fail
	r.settle()
	if st := r.store.Status(); st.Writes != 1 {
		t.Fatalf("%d writes; a failing write was retried before the interval", st.Writes)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(5 * time.Second)
	st = r.waitWrites(2)
	if st.LastError != "" || st.WriteErrors != 1 || fileInstances(t, path) != 2 {
		t.Errorf("status %+v after the directory appeared; want a successful write of the latest state", st)
	}
}

func TestRunRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json.gz")
	leftover := filepath.Join(dir, ".state.json.gz.12345.tmp")
	other := filepath.Join(dir, ".other.json.gz.1.tmp") // another file's: not ours to remove
	for _, p := range []string{leftover, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startRunner(t, path, time.Second)
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Error("leftover temporary file not removed")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("another file's temporary file was removed")
	}
}

func TestRestore(t *testing.T) {
	dir := t.TempDir()
	configured := []Ref{{"zk", "zookeeper"}, {"nacos", "consul"}, {"fresh", "file"}, {"empty", "file"}}
	valid := filepath.Join(dir, "valid.json.gz")
	if _, err := write(valid, append(sample(), Registry{Name: "gone", Type: "eureka"}), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.json.gz")
	b, _ := os.ReadFile(valid)
	if err := os.WriteFile(corrupt, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		file     string
		result   string
		restored []string // "name=services"
		skipped  []string
		missing  []string
		errorLog bool
	}{
		{"valid file", valid, LoadRestored, []string{"zk=2", "empty=0"}, []string{"nacos", "gone"}, []string{"fresh"}, false},
		{"no file", filepath.Join(dir, "absent"), LoadNoFile, nil, nil, nil, false},
		{"truncated file", corrupt, LoadIgnored, nil, nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs strings.Builder
			reg := prometheus.NewRegistry()
			st, err := New(Config{File: c.file}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			var restored []string
			st.Restore(configured, func(name string, services []*registry.Service) {
				restored = append(restored, name+"="+strconv.Itoa(len(services)))
			})
			if !slices.Equal(restored, c.restored) {
				t.Errorf("restored %v, want %v (a registry is restored only to the same name and type)", restored, c.restored)
			}
			ls := st.Status().Load
			var skipped []string
			for _, s := range ls.Skipped {
				skipped = append(skipped, s.Name)
			}
			if ls.Result != c.result || !slices.Equal(skipped, c.skipped) || !slices.Equal(ls.Missing, c.missing) {
				t.Errorf("load status %+v; want result %s, skipped %v, missing %v", ls, c.result, c.skipped, c.missing)
			}
			if c.errorLog != (ls.Error != "") || c.errorLog != strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("error %q, log:\n%s", ls.Error, logs.String())
			}
			if v := testutil.ToFloat64(st.met.loadFailed); (v == 1) != c.errorLog {
				t.Errorf("load_failed gauge %v", v)
			}
			if _, err := json.Marshal(st.Status()); err != nil {
				t.Errorf("status is not JSON: %v", err)
			}
		})
	}
}
