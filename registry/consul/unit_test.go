package consul

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" valid
	}{
		{"defaults", Config{}, ""},
		{"https address", Config{Address: Addresses{"https://consul.example:8501"}}, ""},
		{"address without port", Config{Address: Addresses{"consul.service"}}, ""},
		{"bad scheme", Config{Address: Addresses{"ftp://x:1"}}, "address[0]"},
		{"address with path", Config{Address: Addresses{"http://x:1/v1"}}, "address[0]"},
		{"star with others", Config{Datacenters: []string{"*", "dc1"}}, `datacenters[0]: "*" must be the only entry`},
		{"duplicate dc", Config{Datacenters: []string{"dc1", "dc1"}}, "datacenters[1]"},
		{"bad include", Config{Include: []string{"("}}, "include[0]"},
		{"empty tag", Config{Tags: []string{""}}, "tags[0]"},
		{"token both sources", Config{Token: registry.Secret{File: "/x", Env: "Y"}}, "token:"},
		{"bad health status", Config{HealthStatus: []string{"ok"}}, "healthStatus[0]"},
		{"wait too long", Config{Wait: time.Hour}, "wait:"},
		{"rate", Config{QueryRate: -1}, "queryRate"},
		{"burst", Config{QueryBurst: 1000}, "queryBurst"},
		{"protocol", Config{DefaultProtocol: "dubbo"}, "defaultProtocol"},
		{"cert without key", Config{TLS: TLS{Enabled: true, CertFile: "/c"}}, "tls.certFile"},
		{"tls files without tls", Config{TLS: TLS{CAFile: "/ca"}}, "tls.enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAddressesYAML(t *testing.T) {
	for doc, want := range map[string][]string{
		"address: 127.0.0.1:8500":     {"127.0.0.1:8500"},
		"address: [a:1, https://b:2]": {"a:1", "https://b:2"},
		"address:\n- a:1\n":           {"a:1"},
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if strings.Join(c.Address, ",") != strings.Join(want, ",") {
			t.Errorf("%q: got %v, want %v", doc, c.Address, want)
		}
	}
	var c Config
	if err := yaml.Unmarshal([]byte("address: {a: 1}"), &c); err == nil {
		t.Error("a mapping as address was accepted")
	}
}

func TestSecretsNamesTokenOnly(t *testing.T) {
	c := Config{Token: registry.Secret{Env: "CONSUL_TOKEN"}}
	if got := c.Secrets(); len(got) != 1 || got["token"].Env != "CONSUL_TOKEN" {
		t.Errorf("Secrets() = %v", got)
	}
	if got := (Config{}).Secrets(); len(got) != 0 {
		t.Errorf("Secrets() of no token = %v", got)
	}
}

func TestAggregate(t *testing.T) {
	chk := func(id, status string) *api.HealthCheck { return &api.HealthCheck{CheckID: id, Status: status} }
	tests := []struct {
		name   string
		checks api.HealthChecks
		status string
		maint  bool
	}{
		{"no checks", nil, "passing", false},
		{"passing", api.HealthChecks{chk("serfHealth", "passing"), chk("c", "passing")}, "passing", false},
		{"warning", api.HealthChecks{chk("serfHealth", "passing"), chk("c", "warning")}, "warning", false},
		{"critical wins", api.HealthChecks{chk("a", "warning"), chk("b", "critical"), chk("c", "passing")}, "critical", false},
		{"unknown state is critical", api.HealthChecks{chk("a", "bogus")}, "critical", false},
		{"service maintenance", api.HealthChecks{chk("_service_maintenance:x", "critical"), chk("c", "passing")}, "passing", true},
		{"node maintenance", api.HealthChecks{chk("_node_maintenance", "critical")}, "passing", true},
	}
	for _, tc := range tests {
		s, m := aggregate(tc.checks)
		if s != tc.status || m != tc.maint {
			t.Errorf("%s: aggregate = %s, %v; want %s, %v", tc.name, s, m, tc.status, tc.maint)
		}
	}
}

func TestWeight(t *testing.T) {
	for in, want := range map[int]uint32{0: 0, -3: 0, 1: 100, 7: 700, 1 << 30: 1e9} {
		if got := weight(in); got != want {
			t.Errorf("weight(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestParamsRestoresDubboDots(t *testing.T) {
	p := params([]string{"dubbo", "version=1.0", "a=b=c"}, map[string]string{"dubbo_endpoints": "[]", "dubbo_metadata_storage-type": "local", "zone": "z", "version": "2.0"})
	want := map[string]string{"version": "2.0", "a": "b=c", "dubbo.endpoints": "[]", "dubbo.metadata.storage-type": "local", "zone": "z"}
	if len(p) != len(want) {
		t.Fatalf("params = %v, want %v", p, want)
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("params[%s] = %q, want %q", k, p[k], v)
		}
	}
}

func TestConvertFiltersTagsAndCredentials(t *testing.T) {
	conv := converter{cfg: Config{Tags: []string{"mesh"}}.WithDefaults()}
	entry := func(id string, tags []string, meta map[string]string) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Node: "n", Address: "10.0.0.1"},
			Service: &api.AgentService{ID: id, Service: "s", Port: 80, Tags: tags, Meta: meta, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}
	}
	svcs, rej := conv.convert("dc1", "s", []*api.ServiceEntry{
		entry("in", []string{"mesh"}, map[string]string{"password": "hunter2", "timestamp": "1", "app": "x"}),
		entry("out", []string{"other"}, nil),
	})
	if len(rej) != 0 || len(svcs) != 1 || len(svcs[0].Instances) != 1 {
		t.Fatalf("convert = %s, rejects %v", testkit.Dump(svcs), rej)
	}
	in := svcs[0].Instances[0]
	if in.ID != "n/in" || in.Address != "10.0.0.1" {
		t.Errorf("instance %s: want ID n/in and the node's address", testkit.Dump(in))
	}
	if _, ok := in.Labels["password"]; ok {
		t.Error("a credential became a label")
	}
	if _, ok := in.Labels["timestamp"]; ok {
		t.Error("a volatile key became a label")
	}
	if in.Labels["app"] != "x" {
		t.Errorf("labels %v lack app=x", in.Labels)
	}
}

// TestWatchIndexRules drives a watch with a scripted fetch: no real agent returns an index of 0
// or a lower index on demand without a restart, and these are the rules Consul documents.
func TestWatchIndexRules(t *testing.T) {
	answers := []uint64{10, 12, 5, 0, 0, 7}
	var mu sync.Mutex
	var asked []uint64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fetch := func(ctx context.Context, index uint64) (uint64, error) {
		mu.Lock()
		asked = append(asked, index)
		k := len(asked)
		mu.Unlock()
		if k > len(answers) {
			close(done)
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return answers[k-1], nil
	}
	resets := 0
	w := &watch{limiter: rate.NewLimiter(rate.Inf, 1), done: make(chan struct{}), onReset: func() { resets++ }}
	go w.run(ctx, fetch, func(error) {})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not make its requests")
	}
	cancel()
	<-w.done
	// 10, 12 follow; 5 < 12 resets to 0; 0 after a reset is taken as 1; 0 < 1 resets again... as 0.
	want := []uint64{0, 10, 12, 0, 1, 0, 7}
	mu.Lock()
	defer mu.Unlock()
	if !equalU64(asked, want) {
		t.Errorf("wait indexes asked %v, want %v", asked, want)
	}
	if resets != 2 {
		t.Errorf("resets = %d, want 2", resets)
	}
}

// TestWatchRateLimited checks the bucket bounds a query whose answer always changes: no more
// requests than the burst plus the rate allow.
func TestWatchRateLimited(t *testing.T) {
	var n int
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	fetch := func(ctx context.Context, index uint64) (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return index + 1, nil // a change every time: the blocking query never blocks
	}
	w := &watch{limiter: rate.NewLimiter(rate.Limit(10), 3), done: make(chan struct{}), onReset: func() {}}
	go w.run(ctx, fetch, func(error) {})
	time.Sleep(500 * time.Millisecond) // the quantity measured is requests in this window
	cancel()
	<-w.done
	mu.Lock()
	defer mu.Unlock()
	if n > 3+6 || n < 3 {
		t.Errorf("%d requests in 0.5s with rate 10/s burst 3; want 3-9", n)
	}
}

func TestWatchErrorBacksOffAndRereads(t *testing.T) {
	var asked []uint64
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{})
	fetch := func(ctx context.Context, index uint64) (uint64, error) {
		mu.Lock()
		asked = append(asked, index)
		k := len(asked)
		mu.Unlock()
		switch k {
		case 1:
			return 40, nil
		case 2:
			return 0, errors.New("connection refused")
		case 3:
			close(got)
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	var errs int
	w := &watch{limiter: rate.NewLimiter(rate.Inf, 1), done: make(chan struct{}), onReset: func() {}}
	start := time.Now()
	go w.run(ctx, fetch, func(error) { errs++ })
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no request after the error")
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, want a back-off of 1s", d)
	}
	mu.Lock()
	if !equalU64(asked, []uint64{0, 40, 0}) {
		t.Errorf("indexes %v: after an error the next read must not block (0)", asked)
	}
	mu.Unlock()
	cancel()
	<-w.done
	if errs != 1 {
		t.Errorf("errors reported %d, want 1", errs)
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDescribeErrorACL(t *testing.T) {
	tok := registry.Secret{File: "/etc/creds/consul-token"}
	err := describeError(api.StatusError{Code: 403, Body: "Permission denied: token with AccessorID 'abc' lacks permission 'service:read' on \"pay\""},
		"watching service pay", "service:read on \"pay\"", tok)
	if !errors.Is(err, errACL) {
		t.Errorf("%v is not an ACL error", err)
	}
	for _, want := range []string{"file:/etc/creds/consul-token", "service:read", "watching service pay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	err = describeError(api.StatusError{Code: 500, Body: "rpc error"}, "x", "p", tok)
	if errors.Is(err, errACL) || !strings.Contains(err.Error(), "500") {
		t.Errorf("a 500 became %v", err)
	}
}
