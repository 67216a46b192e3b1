package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// call is one thing the adapter told its sink.
type call struct {
	op       string
	services []*registry.Service
	err      error
}

// recordingSink is a registry.Sink that queues every call for the test to read in order.
type recordingSink struct{ calls chan call }

func newSink() *recordingSink { return &recordingSink{calls: make(chan call, 64)} }

func (s *recordingSink) Replace(services []*registry.Service) {
	s.calls <- call{op: "replace", services: services}
}
func (s *recordingSink) Upsert(services []*registry.Service) {
	s.calls <- call{op: "upsert", services: services}
}
func (s *recordingSink) Delete([]registry.Key)        { s.calls <- call{op: "delete"} }
func (s *recordingSink) Fail(err error)               { s.calls <- call{op: "fail", err: err} }
func (s *recordingSink) Reject(string, string, error) { s.calls <- call{op: "reject"} }
func (s *recordingSink) Accept(string)                { s.calls <- call{op: "accept"} }

// The file registry holds no governance rules; a call would show up as an unexpected op.
func (s *recordingSink) ReplaceRules([]*registry.Rule)  { s.calls <- call{op: "replace-rules"} }
func (s *recordingSink) UpsertRules([]*registry.Rule)   { s.calls <- call{op: "upsert-rules"} }
func (s *recordingSink) DeleteRules([]registry.RuleKey) { s.calls <- call{op: "delete-rules"} }

// next returns the sink's next call; the timeout only bounds a failing test.
func (s *recordingSink) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no call to the sink within 5s")
		return call{}
	}
}

// wantReplace reads the next call and checks it is a Replace with the given instance addresses
// for the single service "svc".
func (s *recordingSink) wantReplace(t *testing.T, addrs ...string) {
	t.Helper()
	c := s.next(t)
	if c.op != "replace" {
		t.Fatalf("got %s (%v), want replace with %v", c.op, c.err, addrs)
	}
	if len(c.services) != 1 {
		t.Fatalf("replace with %d services, want 1", len(c.services))
	}
	var got []string
	for _, in := range c.services[0].Instances {
		got = append(got, in.Address)
	}
	if strings.Join(got, ",") != strings.Join(addrs, ",") {
		t.Fatalf("replace with instances %v, want %v", got, addrs)
	}
}

// servicesFile is a valid file with one service "svc" and an instance per address.
func servicesFile(addrs ...string) string {
	var b strings.Builder
	b.WriteString("services:\n  - name: svc\n    instances:\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "      - address: %s\n        ports: {http: 8080}\n", a)
	}
	return b.String()
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs an adapter on path with fast settling; notifications only unless poll is set.
func start(t *testing.T, path string, poll time.Duration, configure func(*Adapter)) (*Adapter, *recordingSink, *prometheus.Registry) {
	t.Helper()
	if poll == 0 {
		poll = time.Hour // so a passing test proves the notification path
	}
	reg := prometheus.NewRegistry()
	a, err := New(Config{Path: path, PollInterval: poll}, registry.Options{Name: "static", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	a.settle = 10 * time.Millisecond
	if configure != nil {
		configure(a)
	}
	sink := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a, sink, reg
}

func TestLiveEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	write(t, path, servicesFile("127.0.0.1"))
	_, sink, _ := start(t, path, 0, nil)
	sink.wantReplace(t, "127.0.0.1")

	// In place, as `cat > file` does.
	write(t, path, servicesFile("127.0.0.1", "127.0.0.2"))
	sink.wantReplace(t, "127.0.0.1", "127.0.0.2")

	// Write a temporary file and rename it over the original, as most editors save.
	tmp := path + ".swp"
	write(t, tmp, servicesFile("127.0.0.3"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	sink.wantReplace(t, "127.0.0.3")

	// Same content again: nothing is sent, so the next call is the following real change.
	write(t, path, servicesFile("127.0.0.3"))
	time.Sleep(50 * time.Millisecond) // let the identical write's events settle first
	write(t, path, servicesFile("127.0.0.4"))
	sink.wantReplace(t, "127.0.0.4")
}

func TestMalformedEditKeepsLastGoodState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	write(t, path, servicesFile("127.0.0.1"))
	a, sink, _ := start(t, path, 0, nil)
	sink.wantReplace(t, "127.0.0.1")

	// Line 7 has a typo'd field.
	write(t, path, servicesFile("127.0.0.1")+"      - address: 127.0.0.2\n        prot: {http: 8080}\n")
	c := sink.next(t)
	if c.op != "fail" || !strings.Contains(c.err.Error(), "line 7") || !strings.Contains(c.err.Error(), `unknown field "prot"`) {
		t.Fatalf("got %s %v; want fail naming line 7 and the field", c.op, c.err)
	}
	d := a.Describe()
	if d["errorLine"] != 7 || !strings.Contains(fmt.Sprint(d["error"]), "line 7") {
		t.Errorf("Describe() = %v; want the error and its line", d)
	}
	if d["services"] != 1 {
		t.Errorf("Describe() services = %v; want the last good version's 1", d["services"])
	}
	if v := testutil.ToFloat64(a.metrics.valid); v != 0 {
		t.Errorf("mcp_bridge_file_valid = %v, want 0", v)
	}
	if v := testutil.ToFloat64(a.metrics.errorLine); v != 7 {
		t.Errorf("mcp_bridge_file_error_line = %v, want 7", v)
	}

	// A second, different problem is reported too; the sink still has the last good state.
	write(t, path, "services:\n  - name: svc\n    instances:\n      - address: 127.0.0.1:80\n")
	if c := sink.next(t); c.op != "fail" || !strings.Contains(c.err.Error(), "line 4") {
		t.Fatalf("got %s %v; want fail at line 4", c.op, c.err)
	}

	write(t, path, servicesFile("127.0.0.1", "127.0.0.2"))
	sink.wantReplace(t, "127.0.0.1", "127.0.0.2")
	if d := a.Describe(); d["error"] != nil {
		t.Errorf("error still shown after a good version: %v", d["error"])
	}
	if v := testutil.ToFloat64(a.metrics.valid); v != 1 {
		t.Errorf("mcp_bridge_file_valid = %v, want 1", v)
	}
	if v := testutil.ToFloat64(a.metrics.reloads.WithLabelValues("error")); v != 2 {
		t.Errorf("reloads{result=error} = %v, want 2", v)
	}
}

// kubeVolume lays out a directory the way the kubelet's atomic writer does for a ConfigMap
// volume: the data lives in a hidden timestamped directory, "..data" is a symlink to it, and the
// visible file is a symlink through "..data".
type kubeVolume struct {
	t    *testing.T
	root string
	n    int
}

func (v *kubeVolume) publish(content string) {
	v.t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_01_02_15_04_%02d.%09d", v.n, 100000000+v.n)
	if err := os.Mkdir(filepath.Join(v.root, ts), 0o755); err != nil {
		v.t.Fatal(err)
	}
	write(v.t, filepath.Join(v.root, ts, "services.yaml"), content)
	old, _ := os.Readlink(filepath.Join(v.root, "..data"))
	// The swap: a new symlink renamed over ..data, atomic for readers.
	if err := os.Symlink(ts, filepath.Join(v.root, "..data_tmp")); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(v.root, "..data_tmp"), filepath.Join(v.root, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(v.root, "services.yaml")); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", "services.yaml"), filepath.Join(v.root, "services.yaml")); err != nil {
			v.t.Fatal(err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.root, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}

func TestConfigMapSymlinkSwap(t *testing.T) {
	v := &kubeVolume{t: t, root: t.TempDir()}
	v.publish(servicesFile("127.0.0.1"))
	path := filepath.Join(v.root, "services.yaml")
	_, sink, _ := start(t, path, 0, nil)
	sink.wantReplace(t, "127.0.0.1")

	v.publish(servicesFile("127.0.0.1", "127.0.0.2"))
	sink.wantReplace(t, "127.0.0.1", "127.0.0.2")

	// A broken version delivered the same way is reported, and the fix after it applies.
	v.publish("services:\n  - name: svc\n    kind: nope\n")
	if c := sink.next(t); c.op != "fail" || !strings.Contains(c.err.Error(), "line 3") {
		t.Fatalf("got %s %v; want fail at line 3", c.op, c.err)
	}
	v.publish(servicesFile("127.0.0.5"))
	sink.wantReplace(t, "127.0.0.5")
}

func TestFileDeletedAndRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	write(t, path, servicesFile("127.0.0.1"))
	a, sink, _ := start(t, path, 0, nil)
	sink.wantReplace(t, "127.0.0.1")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if c := sink.next(t); c.op != "fail" || !errors.Is(c.err, os.ErrNotExist) {
		t.Fatalf("got %s %v; want fail: file does not exist", c.op, c.err)
	}
	if d := a.Describe(); !strings.Contains(fmt.Sprint(d["error"]), "no such file") {
		t.Errorf("Describe() error = %v", d["error"])
	}
	// The same content as before: still sent, because the sink was told of a failure.
	write(t, path, servicesFile("127.0.0.1"))
	sink.wantReplace(t, "127.0.0.1")
}

func TestMissingAtStartThenCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	_, sink, _ := start(t, path, 0, nil)
	if c := sink.next(t); c.op != "fail" {
		t.Fatalf("got %s, want fail for a missing file", c.op)
	}
	write(t, path, servicesFile("127.0.0.1"))
	sink.wantReplace(t, "127.0.0.1")
}

func TestPollingFallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	write(t, path, servicesFile("127.0.0.1"))
	a, sink, _ := start(t, path, 20*time.Millisecond, func(a *Adapter) { a.noWatch = true })
	sink.wantReplace(t, "127.0.0.1")
	write(t, path, servicesFile("127.0.0.1", "127.0.0.2"))
	sink.wantReplace(t, "127.0.0.1", "127.0.0.2")
	if d := a.Describe(); d["watching"] != false {
		t.Errorf("Describe() watching = %v, want false", d["watching"])
	}
}

func TestEmbeddedExampleServed(t *testing.T) {
	a, err := New(Config{}, registry.Options{Name: "example"})
	if err != nil {
		t.Fatal(err)
	}
	sink := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, sink) }()
	c := sink.next(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want, _ := Parse(Example())
	if c.op != "replace" || len(c.services) != len(want) || len(want) < 3 {
		t.Fatalf("got %s with %d services, want replace with the example's %d", c.op, len(c.services), len(want))
	}
	if d := a.Describe(); d["embedded"] != true || d["services"] != len(want) {
		t.Errorf("Describe() = %v", d)
	}
}

func TestMetricsPerRegistry(t *testing.T) {
	// Wiring wraps each adapter's registerer with its registry name, so two file registries
	// share one registry; registering twice under the same name is an error New reports.
	reg := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"registry": name}, reg)
		if _, err := New(Config{}, registry.Options{Name: name, Metrics: wrapped}); err != nil {
			t.Fatalf("registry %s: %v", name, err)
		}
	}
	again := prometheus.WrapRegistererWith(prometheus.Labels{"registry": "a"}, reg)
	if _, err := New(Config{}, registry.Options{Name: "a", Metrics: again}); err == nil {
		t.Error("a second registration under the same name succeeded")
	}
}

// A file over file.maxBytes, or with an address Istio would drop, is reported with what is wrong
// and the last good version stays in service; before, the mistyped IP was served as a DNS name
// and the endpoint silently dropped downstream, and there was no size limit at all.
func TestOversizedOrBadAddressKeepsLastGoodState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	good := servicesFile("127.0.0.1")
	write(t, path, good)
	limit := int64(len(servicesFile("127.0.0.1", "10.0.0.300")) + 5)
	a, sink, _ := start(t, path, 0, func(a *Adapter) { a.cfg.MaxBytes = limit })
	sink.wantReplace(t, "127.0.0.1")

	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"over maxBytes", servicesFile("127.0.0.1", "127.0.0.2", "127.0.0.3"),
			[]string{fmt.Sprintf("over the limit of %d bytes (file.maxBytes)", limit), "keeping the last good version"}},
		{"mistyped IP", servicesFile("127.0.0.1", "10.0.0.300"),
			[]string{"line 6", `"10.0.0.300" is not a valid IPv4 address`, "keeping the last good version"}},
	} {
		write(t, path, tc.content)
		c := sink.next(t)
		if c.op != "fail" {
			t.Fatalf("%s: got %s, want fail", tc.name, c.op)
		}
		for _, w := range tc.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, c.err, w)
			}
		}
		if d := a.Describe(); d["services"] != 1 || !strings.Contains(fmt.Sprint(d["error"]), tc.want[0]) {
			t.Errorf("%s: Describe() = %v; want the last good version and the error", tc.name, d)
		}
	}
	write(t, path, servicesFile("127.0.0.2"))
	sink.wantReplace(t, "127.0.0.2")
}

func TestReadLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "12345")
	for _, tc := range []struct {
		max  int64
		want string // "" = read whole
	}{
		{5, ""},
		{100, ""},
		{4, "file is 5 bytes, over the limit of 4 bytes"},
		{0, "file is 5 bytes, over the limit of 0 bytes"},
	} {
		data, err := readLimited(path, tc.max)
		switch {
		case tc.want == "" && (err != nil || string(data) != "12345"):
			t.Errorf("max %d: %q, %v", tc.max, data, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("max %d: err %v, want %q", tc.max, err, tc.want)
		}
	}
}
