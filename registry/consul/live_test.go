package consul

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// The test agent's datacenter (consul agent -dev).
const dc = "dc1"

// dubboURL is what Dubbo 2.7's Consul registry writes into Meta "url" for a provider.
const dubboURL = "dubbo://127.0.0.20:20880/org.apache.dubbo.demo.DemoService?anyhost=true&application=demo-provider" +
	"&deprecated=false&dubbo=2.0.2&group=g1&interface=org.apache.dubbo.demo.DemoService&methods=sayHello" +
	"&pid=4242&release=2.7.23&side=provider&timestamp=1700000000000&version=1.0.0"

// registerFixtures registers services the way Spring Cloud Consul and Dubbo do, plus the
// awkward cases: an address-less instance, maintenance, a warning check, a bad address.
func registerFixtures(t *testing.T, cl *api.Client) {
	t.Helper()
	// Spring Cloud Consul: ID <app>-<port>-<hash>, Meta secure/zone/group, an HTTP health check
	// (here a TTL check so the test decides its state).
	register(t, cl, &api.AgentServiceRegistration{ID: "orders-8080-a1", Name: "orders", Address: "127.0.0.10", Port: 8080,
		Tags: []string{"secure=false", "version=2"}, Meta: map[string]string{"secure": "false", "zone": "zone-a", "group": "blue"},
		Weights: &api.AgentWeights{Passing: 3, Warning: 1}}, api.HealthPassing)
	register(t, cl, &api.AgentServiceRegistration{ID: "orders-8443-b2", Name: "orders", Port: 8443,
		Meta: map[string]string{"secure": "true", "zone": "zone-b", "group": "blue"}}, api.HealthPassing)
	register(t, cl, &api.AgentServiceRegistration{ID: "orders-8081-c3", Name: "orders", Address: "127.0.0.11", Port: 8081,
		Meta: map[string]string{"secure": "false"}, Weights: &api.AgentWeights{Passing: 1, Warning: 7}}, api.HealthWarning)
	// Dubbo 2.7's ConsulRegistry: service name = interface, URL parameters as tags plus "dubbo",
	// the full URL in Meta "url".
	register(t, cl, &api.AgentServiceRegistration{ID: "demo-1", Name: "org.apache.dubbo.demo.DemoService", Address: "127.0.0.20", Port: 20880,
		Tags: []string{"dubbo", "application=demo-provider", "group=g1", "version=1.0.0", "side=provider"},
		Meta: map[string]string{"url": dubboURL}}, api.HealthPassing)
	// A Dubbo 3 application: instance metadata in Meta, dots spelled '_' as Consul requires.
	register(t, cl, &api.AgentServiceRegistration{ID: "shop-1", Name: "shop-app", Address: "127.0.0.30", Port: 20881,
		Meta: map[string]string{"dubbo_endpoints": `[{"port":20881,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`,
			"dubbo_metadata_revision": "abc123", "dubbo_metadata_storage-type": "local"}}, api.HealthPassing)
	// Maintenance: registered and passing, but an operator took it out.
	register(t, cl, &api.AgentServiceRegistration{ID: "legacy-1", Name: "legacy", Address: "127.0.0.40", Port: 9000}, api.HealthPassing)
	if err := cl.Agent().EnableServiceMaintenance("legacy-1", "test"); err != nil {
		t.Fatal(err)
	}
	// An address Istio would drop: rejected, the rest of the service kept.
	register(t, cl, &api.AgentServiceRegistration{ID: "broken-1", Name: "broken", Address: "not an address", Port: 80}, api.HealthPassing)
	register(t, cl, &api.AgentServiceRegistration{ID: "broken-2", Name: "broken", Address: "127.0.0.50", Port: 80}, api.HealthPassing)
}

// TestGolden registers Spring Cloud Consul, Dubbo 2 and Dubbo 3 services in a real agent and
// compares what the adapter sends with testdata/services.golden.json (regenerate with -update).
func TestGolden(t *testing.T) {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl := agentClient(t, agent, "")
	registerFixtures(t, cl)
	_, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}})
	waitFor(t, sink, 10*time.Second, "the first Replace", func(r *testkit.RecordSink) bool { return len(r.Events()) > 0 })
	ops := sink.Events()
	if ops[0].Op != "replace" {
		t.Fatalf("first sink call is %s, want replace", ops[0].Op)
	}
	got, err := json.MarshalIndent(ops[0].Services, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, filepath.Join("testdata", "services.golden.json"), append(got, '\n'))
	held, _ := sink.Rejects()
	rejects := maps2slice(held)
	if want := []string{dc + "/broken/t/broken-1=bad-address"}; !slices.Equal(rejects, want) {
		t.Errorf("rejects = %v, want %v", rejects, want)
	}

	// The Dubbo provider is the service ZooKeeper would give for the same URL, so its host is
	// the same as from ZooKeeper (and Nacos, which the nacos package checks).
	u, err := dubbo.ParseURL(dubboURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dubbo.NewProvider(u)
	if err != nil {
		t.Fatal(err)
	}
	fromZK := dubbo.InterfaceService(p.Key, []dubbo.Provider{p})
	fromZK.Registry = "zookeeper"
	fromConsul := sink.Get(registry.Key{Kind: registry.KindDubboInterface, Namespace: dc, Group: "g1", Name: "org.apache.dubbo.demo.DemoService", Version: "1.0.0"})
	if fromConsul == nil {
		t.Fatalf("no Dubbo interface service; have %s", testkit.Dump(sink.Services()))
	}
	c := fromConsul.Clone()
	c.Registry = "consul"
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{
		{Name: "zookeeper", Hosts: translate.HostTemplates{Application: "{{.Name}}.zookeeper", DubboApplication: "{{.Name}}.zookeeper"}},
		{Name: "consul", Hosts: translate.HostTemplates{Application: "{{.Name}}{{with .Namespace}}.{{.}}{{end}}.consul", DubboApplication: "{{.Name}}{{with .Namespace}}.{{.}}{{end}}.consul"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if hz, hc := tr.Host(fromZK), tr.Host(c); hz != hc || hz == "" {
		t.Errorf("host from ZooKeeper %q, from Consul %q: want equal", hz, hc)
	}
	if got, want := c.Instances[0].Ports, fromZK.Instances[0].Ports; !equalPorts(got, want) {
		t.Errorf("ports from Consul %v, from ZooKeeper %v", got, want)
	}
}

func equalPorts(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func maps2slice(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// liveBound is how soon a change Consul reports must reach the sink: blocking queries return as
// soon as the index moves. Typical here: a few milliseconds.
const liveBound = time.Second

// TestLiveChanges makes the changes operators and applications make and measures how long each
// takes from Consul accepting it to the adapter sending it.
func TestLiveChanges(t *testing.T) {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl := agentClient(t, agent, "")
	register(t, cl, &api.AgentServiceRegistration{ID: "seed-1", Name: "seed", Address: "127.0.0.9", Port: 80}, api.HealthPassing)
	// A rate above the default so that the test measures blocking queries, not the bucket.
	_, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}, QueryRate: 20})
	waitFor(t, sink, 10*time.Second, "the first sync", func(r *testkit.RecordSink) bool { return r.Get(appKey(dc, "seed")) != nil })

	web := func(tags []string, w int) *api.AgentServiceRegistration {
		return &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.2", Port: 8080, Tags: tags,
			Weights: &api.AgentWeights{Passing: w, Warning: 1}}
	}
	inst := func(r *testkit.RecordSink) (registry.Instance, bool) {
		in, err := findInstance(r.Get(appKey(dc, "web")), "t/web-1")
		return in, err == nil
	}
	steps := []struct {
		name   string
		change func()
		done   func(in registry.Instance, ok bool) bool
	}{
		{"register", func() { register(t, cl, web(nil, 1), api.HealthPassing) }, func(in registry.Instance, ok bool) bool { return ok && in.Healthy }},
		{"check critical", func() { setCheck(t, cl, "web-1", api.HealthCritical) }, func(in registry.Instance, ok bool) bool { return ok && !in.Healthy }},
		{"check passing", func() { setCheck(t, cl, "web-1", api.HealthPassing) }, func(in registry.Instance, ok bool) bool { return ok && in.Healthy }},
		{"tag change", func() { register(t, cl, web([]string{"color=green"}, 1), "") }, func(in registry.Instance, ok bool) bool { return ok && in.Labels["color"] == "green" }},
		{"weight change", func() { register(t, cl, web([]string{"color=green"}, 5), "") }, func(in registry.Instance, ok bool) bool { return ok && in.Weight == 500 }},
		{"maintenance on", func() {
			if err := cl.Agent().EnableServiceMaintenance("web-1", "test"); err != nil {
				t.Fatal(err)
			}
		}, func(in registry.Instance, ok bool) bool { return ok && !in.Enabled }},
		{"maintenance off", func() {
			if err := cl.Agent().DisableServiceMaintenance("web-1"); err != nil {
				t.Fatal(err)
			}
		}, func(in registry.Instance, ok bool) bool { return ok && in.Enabled }},
		{"deregister", func() {
			if err := cl.Agent().ServiceDeregister("web-1"); err != nil {
				t.Fatal(err)
			}
		}, func(_ registry.Instance, _ bool) bool { return sink.Get(appKey(dc, "web")) == nil }},
	}
	var worst time.Duration
	for _, s := range steps {
		s.change()
		start := time.Now()
		at := waitFor(t, sink, 10*time.Second, s.name, func(r *testkit.RecordSink) bool { in, ok := inst(r); return s.done(in, ok) })
		d := at.Sub(start)
		worst = max(worst, d)
		t.Logf("%-16s reached the sink in %v", s.name, d.Round(time.Millisecond))
		if d > liveBound {
			t.Errorf("%s took %v, bound %v", s.name, d, liveBound)
		}
	}
	t.Logf("worst change latency %v (bound %v)", worst.Round(time.Millisecond), liveBound)
}

// TestAgentRestartFreshDataDir stops the agent by PID, restarts it with an empty data directory
// (every index starts again) and re-registers all but one service: nothing is removed while the
// agent is down, and afterwards the state converges, the service deregistered meanwhile gone.
func TestAgentRestartFreshDataDir(t *testing.T) {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl := agentClient(t, agent, "")
	regs := []*api.AgentServiceRegistration{
		{ID: "a-1", Name: "a", Address: "127.0.0.1", Port: 81},
		{ID: "a-2", Name: "a", Address: "127.0.0.2", Port: 81},
		{ID: "b-1", Name: "b", Address: "127.0.0.3", Port: 82},
		{ID: "c-1", Name: "c", Address: "127.0.0.4", Port: 83},
	}
	for _, r := range regs {
		register(t, cl, r, api.HealthPassing)
	}
	a, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}, RecoveryDelay: 3 * time.Second})
	waitFor(t, sink, 10*time.Second, "the first sync", func(r *testkit.RecordSink) bool { return len(r.Services()) == 3 })

	agent.Stop()
	waitFor(t, sink, 10*time.Second, "Fail", func(r *testkit.RecordSink) bool {
		return slices.ContainsFunc(r.Events(), func(e testkit.Event) bool { return e.Op == "fail" })
	})
	failAt := len(sink.Events())
	agent.Restart()
	// The applications re-register with the new agent; c was deregistered while it was down.
	cl = agentClient(t, agent, "")
	for _, r := range regs[:3] {
		r.Check = nil
		register(t, cl, r, api.HealthPassing)
	}
	waitFor(t, sink, 20*time.Second, "convergence after the restart", func(r *testkit.RecordSink) bool {
		s := r.Services()
		return len(s) == 2 && instanceCount(r.Get(appKey(dc, "a"))) == 2 && r.Get(appKey(dc, "c")) == nil
	})
	// Between the failure and the Replace that ends it, nothing was taken away.
	for _, e := range sink.Events()[failAt:] {
		if e.Op == "replace" {
			break
		}
		if e.Op == "delete" || e.Op == "upsert" {
			t.Errorf("while the agent was down or not yet re-populated the adapter sent %s %s", e.Op, testkit.Dump(e))
		}
	}
	if desc := a.Describe(); desc["error"] != nil {
		t.Errorf("Describe still reports an error after recovery: %v", desc["error"])
	}
}

// TestACL runs against an agent with ACLs on (default deny): a valid token works, a token the
// agent does not know fails with an error naming the token's source and not its value, the
// last-known state is kept, and a rotated token file recovers without a restart.
func TestACL(t *testing.T) {
	const management = "6a0b1b7e-0000-4000-8000-00000000aaaa"
	agent := servers.StartConsul(t, servers.ConsulOptions{ACLToken: management})
	root := agentClient(t, agent, management)
	pol, _, err := root.ACL().PolicyCreate(&api.ACLPolicy{Name: "bridge-read",
		Rules: `service_prefix "" { policy = "read" } node_prefix "" { policy = "read" } agent_prefix "" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatalf("creating policy: %v", err)
	}
	newToken := func() *api.ACLToken {
		tok, _, err := root.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		if err != nil {
			t.Fatalf("creating token: %v", err)
		}
		return tok
	}
	good := newToken()
	register(t, root, &api.AgentServiceRegistration{ID: "pay-1", Name: "pay", Address: "127.0.0.5", Port: 80}, api.HealthPassing)
	file := filepath.Join(t.TempDir(), "consul-token")
	if err := os.WriteFile(file, []byte(good.SecretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("wrong token", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong-token")
		const secret = "11111111-2222-4333-8444-555555555555"
		if err := os.WriteFile(wrong, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		_, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}, Token: registry.Secret{File: wrong}})
		waitFor(t, sink, 10*time.Second, "Fail", func(r *testkit.RecordSink) bool { return len(r.Events()) > 0 })
		e := sink.Events()[0]
		if e.Op != "fail" {
			t.Fatalf("first call %s, want fail", e.Op)
		}
		msg := e.Err.Error()
		for _, want := range []string{"ACL", "file:" + wrong} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not mention %q", msg, want)
			}
		}
		if strings.Contains(msg, secret) {
			t.Errorf("error shows the token: %q", msg)
		}
	})

	_, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}, Token: registry.Secret{File: file}, Wait: 2 * time.Second, RecoveryDelay: -1})
	waitFor(t, sink, 10*time.Second, "the first sync with a valid token", func(r *testkit.RecordSink) bool { return r.Get(appKey(dc, "pay")) != nil })
	// The token is revoked: the next requests are refused; the last-known state stays.
	if _, err := root.ACL().TokenDelete(good.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sink, 15*time.Second, "Fail after the token was revoked", func(r *testkit.RecordSink) bool {
		return slices.ContainsFunc(r.Events(), func(e testkit.Event) bool { return e.Op == "fail" })
	})
	ops := sink.Events()
	i := slices.IndexFunc(ops, func(e testkit.Event) bool { return e.Op == "fail" })
	if msg := ops[i].Err.Error(); !strings.Contains(msg, "file:"+file) || strings.Contains(msg, good.SecretID) {
		t.Errorf("revoked-token error %q: want the token file named and the token not shown", msg)
	}
	for _, e := range ops[i:] {
		if e.Op == "delete" || e.Op == "replace" {
			t.Errorf("after the ACL failure the adapter sent %s", e.Op)
		}
	}
	// A new token in the same file: picked up on the next refusal, and the state is sent whole.
	rotated := newToken()
	if err := os.WriteFile(file, []byte(rotated.SecretID), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sink, 20*time.Second, "recovery with the rotated token", func(r *testkit.RecordSink) bool {
		ops := r.Events()
		return ops[len(ops)-1].Op == "replace" && r.Get(appKey(dc, "pay")) != nil
	})
}

// TestRequestsAtRest counts the HTTP requests the adapter makes for 100 services at rest: one
// per wait per watched query (101 queries), not polling.
func TestRequestsAtRest(t *testing.T) {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl := agentClient(t, agent, "")
	const n = 100
	for i := range n {
		register(t, cl, &api.AgentServiceRegistration{ID: svcName(i) + "-1", Name: svcName(i), Address: "127.0.0.1", Port: 8000 + i}, "")
	}
	const wait = 4 * time.Second
	a, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}, Wait: wait})
	waitFor(t, sink, 20*time.Second, "the first sync", func(r *testkit.RecordSink) bool { return len(r.Services()) == n })
	before := requests(a)
	const window = 12 * time.Second
	time.Sleep(window) // the quantity measured is what happens in this time at rest
	got := requests(a) - before
	// Each of the 101 queries makes at most window/wait+1 requests (Consul adds up to wait/16).
	bound := int64((n + 1) * (int(window/wait) + 1))
	t.Logf("at rest: %d requests in %v for %d watched queries (bound %d; polling once a second would be %d); per minute with the default wait 5m: ~%d",
		got, window, n+1, bound, (n+1)*int(window/time.Second), (n+1)/5)
	if got > bound {
		t.Errorf("%d requests at rest in %v, bound %d", got, window, bound)
	}
	if got < n/2 {
		t.Errorf("only %d requests in %v: the blocking queries are not being renewed", got, window)
	}
	if len(sink.Events()) != 1 {
		t.Errorf("at rest the adapter sent %d calls after the first Replace", len(sink.Events())-1)
	}
}

func svcName(i int) string { return fmt.Sprintf("svc-%03d", i) }

func requests(a *Adapter) int64 {
	n, _ := a.Describe()["requests"].(int64)
	return n
}
