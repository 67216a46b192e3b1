package eureka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// recordSink keeps what the adapter sent: the state of the last Replace, and counts.
type recordSink struct {
	mu       sync.Mutex
	state    map[string]*registry.Service // by service name
	replaces int
	fails    int
	rejects  map[string]string
}

func newRecordSink() *recordSink {
	return &recordSink{state: map[string]*registry.Service{}, rejects: map[string]string{}}
}

func (r *recordSink) Replace(services []*registry.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = map[string]*registry.Service{}
	for _, s := range services {
		r.state[s.Name] = s
	}
	r.replaces++
}
func (r *recordSink) Upsert([]*registry.Service) { panic("the eureka adapter sends whole states") }
func (r *recordSink) Delete([]registry.Key)      { panic("the eureka adapter sends whole states") }
func (r *recordSink) Fail(error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails++
}
func (r *recordSink) Reject(where, reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects[where] = reason
}
func (r *recordSink) Accept(where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rejects, where)
}
func (r *recordSink) ReplaceRules([]*registry.Rule)  {}
func (r *recordSink) UpsertRules([]*registry.Rule)   {}
func (r *recordSink) DeleteRules([]registry.RuleKey) {}

func (r *recordSink) services() []*registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*registry.Service
	for _, s := range r.state {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *recordSink) get(name string) *registry.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[name]
}

func (r *recordSink) counts() (replaces, fails int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replaces, r.fails
}

// startAdapter runs an adapter on cfg until the test ends.
func startAdapter(t testing.TB, cfg Config) (*Adapter, *recordSink) {
	t.Helper()
	a, err := New(cfg.WithDefaults(), registry.Options{Name: "eureka", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sink := newRecordSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, sink); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return a, sink
}

// waitFor polls cond until it returns nil or the timeout passes, and returns how long it took.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	return 0
}

// springInstance is the JSON body Spring Cloud Netflix's EurekaClient POSTs to /apps/<APP>
// (Jackson's shape: port {"$", "@enabled"}, dataCenterInfo with @class, string timestamps).
type springInstance struct {
	App, ID, IP, Status string
	Port, SecurePort    int // SecurePort 0: disabled
	VIP                 string
	Metadata            map[string]string
}

func (s springInstance) body() []byte {
	vip := s.VIP
	if vip == "" {
		vip = s.App
	}
	status := s.Status
	if status == "" {
		status = StatusUp
	}
	md := s.Metadata
	if md == nil {
		md = map[string]string{}
	}
	secure := map[string]any{"$": 443, "@enabled": "false"}
	if s.SecurePort != 0 {
		secure = map[string]any{"$": s.SecurePort, "@enabled": "true"}
	}
	b, _ := json.Marshal(map[string]any{"instance": map[string]any{
		"instanceId": s.ID, "hostName": s.IP, "app": s.App, "ipAddr": s.IP, "status": status,
		"overriddenStatus": "UNKNOWN", "port": map[string]any{"$": s.Port, "@enabled": "true"}, "securePort": secure,
		"countryId": 1, "dataCenterInfo": map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"leaseInfo":   map[string]any{"renewalIntervalInSecs": 30, "durationInSecs": 90},
		"metadata":    md,
		"homePageUrl": fmt.Sprintf("http://%s:%d/", s.IP, s.Port), "statusPageUrl": fmt.Sprintf("http://%s:%d/actuator/info", s.IP, s.Port),
		"healthCheckUrl": fmt.Sprintf("http://%s:%d/actuator/health", s.IP, s.Port),
		"vipAddress":     vip, "secureVipAddress": vip, "isCoordinatingDiscoveryServer": "false",
		"lastUpdatedTimestamp": "1", "lastDirtyTimestamp": "1",
	}})
	return b
}

// eurekaCall sends one request of the Eureka REST API (as a Eureka client does) and fails the
// test unless it answers 2xx.
func eurekaCall(t testing.TB, method, url string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: HTTP %d %s", method, url, resp.StatusCode, b)
	}
}

func register(t testing.TB, server string, s springInstance) {
	t.Helper()
	eurekaCall(t, http.MethodPost, server+"/apps/"+s.App, s.body())
}

func cancel(t testing.TB, server, app, id string) {
	t.Helper()
	eurekaCall(t, http.MethodDelete, server+"/apps/"+app+"/"+id, nil)
}

// setStatus overrides an instance's status (PUT), or removes the override (value "").
func setStatus(t testing.TB, server, app, id, value string) {
	t.Helper()
	if value == "" {
		eurekaCall(t, http.MethodDelete, server+"/apps/"+app+"/"+id+"/status?value=UP", nil)
		return
	}
	eurekaCall(t, http.MethodPut, server+"/apps/"+app+"/"+id+"/status?value="+value, nil)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
