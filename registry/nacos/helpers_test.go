package nacos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// event is one call the adapter made on the sink.
type event struct {
	at       time.Time
	op       string // replace, upsert, delete, fail
	services []*registry.Service
	keys     []registry.Key
	err      error
}

// recordSink applies what it is sent to a map, the way the merge layer would, and keeps every
// call for assertions.
type recordSink struct {
	mu      sync.Mutex
	state   map[registry.Key]*registry.Service
	events  []event
	rejects map[string]string // where -> reason
	nReject int               // Reject calls
	changed chan struct{}
}

func newRecordSink() *recordSink {
	return &recordSink{state: map[registry.Key]*registry.Service{}, rejects: map[string]string{}, changed: make(chan struct{}, 1)}
}

func (r *recordSink) record(e event) {
	e.at = time.Now()
	r.events = append(r.events, e)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[registry.Key]*registry.Service{}
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(event{op: "replace", services: services})
}

func (r *recordSink) Upsert(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range services {
		r.state[s.Key()] = s
	}
	r.record(event{op: "upsert", services: services})
}

func (r *recordSink) Delete(keys []registry.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.state, k)
	}
	r.record(event{op: "delete", keys: keys})
}

func (r *recordSink) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(event{op: "fail", err: err})
}

func (r *recordSink) Reject(where, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects[where] = reason
	r.nReject++
}

func (r *recordSink) Accept(where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rejects, where)
}

// The Nacos adapter reads no governance rules yet.
func (r *recordSink) ReplaceRules(rules []*registry.Rule) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(event{op: "replace-rules"})
}

func (r *recordSink) UpsertRules(rules []*registry.Rule) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(event{op: "upsert-rules"})
}

func (r *recordSink) DeleteRules(keys []registry.RuleKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(event{op: "delete-rules"})
}

// services returns the current state sorted by key.
func (r *recordSink) services() []*registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*registry.Service, 0, len(r.state))
	for _, s := range r.state {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

func (r *recordSink) get(k registry.Key) *registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[k]
}

func (r *recordSink) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.op == op {
			n++
		}
	}
	return n
}

func (r *recordSink) eventsSince(i int) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events[min(i, len(r.events)):]...)
}

func (r *recordSink) nEvents() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor polls cond until it holds, failing the test after timeout with what last failed.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitService waits until the sink holds the service and check accepts it.
func (r *recordSink) waitService(t testing.TB, timeout time.Duration, k registry.Key, check func(*registry.Service) error) {
	t.Helper()
	waitFor(t, timeout, k.String(), func() error {
		s := r.get(k)
		if s == nil {
			return fmt.Errorf("not in the sink")
		}
		return check(s)
	})
}

// running is an adapter started for a test.
type running struct {
	a      *Adapter
	sink   *recordSink
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

// testConfig is a configuration with short intervals for a server at addr.
func testConfig(t testing.TB, addr string) Config {
	return Config{
		Servers:        []string{addr},
		Flavor:         FlavorPolaris,
		PollInterval:   300 * time.Millisecond,
		RecoveryDelay:  500 * time.Millisecond,
		ResyncInterval: -1,
		Timeout:        2 * time.Second,
		CacheDir:       t.TempDir(),
	}
}

// startAdapter runs an adapter whose sink records everything, and also feeds extra sinks.
func startAdapter(t testing.TB, cfg Config, factory clientFactory, extra ...registry.Sink) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := newAdapter(cfg, registry.Options{Name: "nacos", Logger: log, Metrics: reg}, factory)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, sink: newRecordSink(), cancel: cancel, done: make(chan error, 1), reg: reg}
	var sink registry.Sink = r.sink
	if len(extra) > 0 {
		sink = append(teeSink{r.sink}, extra...)
	}
	go func() { r.done <- a.Run(ctx, sink) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

// waitSynced waits for the first Replace.
func (r *running) waitSynced(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the first Replace", func() error {
		if r.sink.count("replace") == 0 {
			return fmt.Errorf("no Replace yet")
		}
		return nil
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newApp is an application process: its own naming client, as Spring Cloud Alibaba and Dubbo
// create one per process.
func newApp(t testing.TB, addr, namespace string) naming_client.INamingClient {
	t.Helper()
	cc, sc := sdkClientConfig(t, addr, namespace)
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: sc})
	if err != nil {
		t.Fatalf("creating application naming client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

func newConfigApp(t testing.TB, addr, namespace string) config_client.IConfigClient {
	t.Helper()
	cc, sc := sdkClientConfig(t, addr, namespace)
	c, err := clients.NewConfigClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: sc})
	if err != nil {
		t.Fatalf("creating application config client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

func sdkClientConfig(t testing.TB, addr, namespace string) (constant.ClientConfig, []constant.ServerConfig) {
	host, port, err := splitServer(addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return constant.ClientConfig{
			NamespaceId: sdkNamespace(namespace), TimeoutMs: 3000, NotLoadCacheAtStart: true,
			CacheDir: filepath.Join(dir, "cache"), LogDir: filepath.Join(dir, "log"), LogLevel: "warn",
		}, []constant.ServerConfig{
			{IpAddr: host, Port: uint64(port)},
		}
}

func register(t testing.TB, c naming_client.INamingClient, p vo.RegisterInstanceParam) {
	t.Helper()
	if p.Weight == 0 {
		p.Weight = 1
	}
	// A client's first request can race its own connection-time replay of the registration, and
	// Polaris then refuses one of the two as "the same instance request": try again.
	var ok bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if ok, err = c.RegisterInstance(p); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registering %s %s:%d: ok=%v err=%v", p.ServiceName, p.Ip, p.Port, ok, err)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
