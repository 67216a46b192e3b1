package zookeeper

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// recordingSink keeps what an adapter reported, as the merge layer would see it.
type recordingSink struct {
	mu        sync.Mutex
	services  map[registry.Key]*registry.Service
	replaces  int
	upserts   int
	deletes   int
	fails     []error
	failed    bool
	rejects   map[string]string // where -> reason
	rules     map[registry.RuleKey]*registry.Rule
	ruleCalls int
	changed   chan struct{}
	lastEvent time.Time
	// sendTimes records, per instance ID, when an Upsert or Replace first carried it.
	sendTimes map[string]time.Time
}

func newRecordingSink() *recordingSink {
	return &recordingSink{services: map[registry.Key]*registry.Service{}, rejects: map[string]string{},
		rules: map[registry.RuleKey]*registry.Rule{}, changed: make(chan struct{}, 1), sendTimes: map[string]time.Time{}}
}

func (s *recordingSink) notify() {
	s.lastEvent = time.Now()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *recordingSink) stamp(svcs []*registry.Service) {
	now := time.Now()
	for _, svc := range svcs {
		for _, in := range svc.Instances {
			if _, ok := s.sendTimes[in.ID]; !ok {
				s.sendTimes[in.ID] = now
			}
		}
	}
}

func (s *recordingSink) Replace(svcs []*registry.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services = map[registry.Key]*registry.Service{}
	for _, svc := range svcs {
		s.services[svc.Key()] = svc
	}
	s.stamp(svcs)
	s.replaces++
	s.failed = false
	s.notify()
}

func (s *recordingSink) Upsert(svcs []*registry.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replaces == 0 {
		panic("Upsert before the first Replace")
	}
	for _, svc := range svcs {
		s.services[svc.Key()] = svc
	}
	s.stamp(svcs)
	s.upserts++
	s.notify()
}

func (s *recordingSink) Delete(keys []registry.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.services, k)
	}
	s.deletes++
	s.notify()
}

func (s *recordingSink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, err)
	s.failed = true
	s.notify()
}

func (s *recordingSink) Reject(where, reason string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects[where] = reason
	s.notify()
}

func (s *recordingSink) Accept(where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rejects, where)
	s.notify()
}

func (s *recordingSink) ReplaceRules(rules []*registry.Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = map[registry.RuleKey]*registry.Rule{}
	for _, r := range rules {
		s.rules[r.Key()] = r
	}
	s.ruleCalls++
	s.notify()
}

func (s *recordingSink) UpsertRules(rules []*registry.Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rules {
		s.rules[r.Key()] = r
	}
	s.ruleCalls++
	s.notify()
}

func (s *recordingSink) DeleteRules(keys []registry.RuleKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.rules, k)
	}
	s.ruleCalls++
	s.notify()
}

// rule returns the rule the adapter last sent for k.
func (s *recordingSink) rule(k registry.RuleKey) *registry.Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rules[k]
}

// snapshot returns the services sorted by key.
func (s *recordingSink) snapshot() []*registry.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*registry.Service, 0, len(s.services))
	for _, svc := range s.services {
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

func (s *recordingSink) service(k registry.Key) *registry.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[k]
}

func (s *recordingSink) rejectReasons() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.rejects))
	for k, v := range s.rejects {
		out[k] = v
	}
	return out
}

func (s *recordingSink) counts() (replaces, upserts, deletes, fails int, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaces, s.upserts, s.deletes, len(s.fails), s.failed
}

// waitFor waits until cond holds on the sink's state, re-checking on every report.
func (s *recordingSink) waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// loadTree reads a fixture tree file:
//
//	# comment
//	/literal/path/as/captured                   a node without data
//	/literal/path = data                          a node with data (rest of the line)
//	url /dubbo/<iface>/<category> <raw URL>      a URL child, encoded as Dubbo encodes it
//
// Provider and consumer nodes are ephemeral, as Dubbo creates them.
func loadTree(t testing.TB, file string) []zktest.Node {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []zktest.Node
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var e zktest.Node
		if rest, ok := strings.CutPrefix(line, "url "); ok {
			parent, raw, _ := strings.Cut(rest, " ")
			e.Path = parent + "/" + zktest.JavaURLEncode(raw)
		} else if p, data, ok := strings.Cut(line, " = "); ok {
			e.Path, e.Data = p, []byte(data)
		} else {
			e.Path = line
		}
		e.Ephemeral = strings.Contains(e.Path, "/providers/") || strings.Contains(e.Path, "/consumers/") ||
			strings.HasPrefix(e.Path, "/services/") && strings.Count(e.Path, "/") == 3
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTree creates the fixture nodes under prefix.
func writeTree(t testing.TB, c *zk.Conn, prefix string, entries []zktest.Node) {
	t.Helper()
	for _, e := range entries {
		zktest.Create(t, c, prefix+e.Path, e.Data, e.Ephemeral)
	}
}

type runningAdapter struct {
	a      *Adapter
	sink   *recordingSink
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// registryOptions are the adapter options of a test: a private metrics registry, logs on -v.
func registryOptions() registry.Options {
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	return registry.Options{Name: "zk", Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})), Metrics: prometheus.NewRegistry()}
}

// startAdapter runs an adapter until the test ends.
func startAdapter(t testing.TB, cfg Config) *runningAdapter {
	t.Helper()
	opts := registryOptions()
	reg := opts.Metrics.(*prometheus.Registry)
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAdapter{a: a, sink: newRecordingSink(), reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx, r.sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancellation")
		}
	})
	return r
}

// waitSynced waits for the first Replace.
func (r *runningAdapter) waitSynced(t testing.TB) {
	t.Helper()
	r.sink.waitFor(t, 30*time.Second, "the first Replace", func() error {
		if n, _, _, _, _ := r.sink.counts(); n == 0 {
			return errors.New("no Replace yet")
		}
		return nil
	})
}

func dubboKey(iface, group, version string) registry.Key {
	return registry.Key{Kind: registry.KindDubboInterface, Name: iface, Group: group, Version: version}
}

func instanceIDs(s *registry.Service) []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		ids[i] = in.ID
	}
	return ids
}
