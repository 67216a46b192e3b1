package consul_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry/consul"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// startPipeline runs the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs
// it: adapter, merge with the default debounce, translate, MCP server) for one Consul registry
// named "consul" with the type's default hosts, and connects an MCP client to it.
func startPipeline(t testing.TB, cfg consul.Config) (*pipeline.Pipeline, *mcpclient.Client) {
	t.Helper()
	cfg = cfg.WithDefaults() // as loading a configuration file does
	conf := &config.Config{Registries: []config.Registry{{Name: "consul", Type: "consul", Config: &cfg}}}
	conf.Translate.Registries = conf.TranslateRegistries()
	// Every registry label, as before lean labels: this test checks the adapter's mapping of the
	// registry's data; which labels routing keeps is translate's (its own tests).
	conf.Translate.Labels.Mode = translate.LabelModeAll
	p, err := pipeline.New(conf, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p, mcpclient.Serve(t, p)
}

func client(t testing.TB, c *servers.Consul) *api.Client {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: c.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// must fails the test on a Consul API error.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// endpoint returns the endpoint of host at address.
func endpoint(c *mcpclient.Client, host, address string) (*networking.WorkloadEntry, error) {
	se := c.Entry(host)
	if se == nil {
		return nil, fmt.Errorf("no ServiceEntry for %s", host)
	}
	for _, e := range se.GetEndpoints() {
		if e.GetAddress() == address {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%s has no endpoint %s (has %v)", host, address, se.GetEndpoints())
}

// liveBound is issue 11's bound from Consul reporting a change to a connected MCP client. It
// covers the blocking query's return, the default debounce (100 ms quiet), translation and the
// push. Typical here: ~110-150 ms, the debounce's quiet time being most of it.
const liveBound = time.Second

// TestPipelineLiveChanges makes each kind of change operators and applications make, three
// times over, and measures from Consul accepting it to the MCP client holding the result.
func TestPipelineLiveChanges(t *testing.T) {
	agent := servers.StartConsul(t, servers.ConsulOptions{})
	cl := client(t, agent)
	// A rate above the default so that the bucket does not pace the fast sequence of changes.
	_, mc := startPipeline(t, consul.Config{Address: consul.Addresses{agent.Addr()}, QueryRate: 20})
	const host, addr = "web.dc1.consul", "127.0.0.2"
	reg := func(tags []string, weight int) *api.AgentServiceRegistration {
		return &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: addr, Port: 8080, Tags: tags,
			Weights: &api.AgentWeights{Passing: weight, Warning: 1}}
	}
	var weight1 uint32
	present := func(c *mcpclient.Client) error { _, err := endpoint(c, host, addr); return err }
	absent := func(c *mcpclient.Client) error {
		if _, err := endpoint(c, host, addr); err == nil {
			return errors.New("the endpoint is still served")
		}
		return nil
	}
	steps := []struct {
		name   string
		change func()
		done   func(*mcpclient.Client) error
	}{
		{"register", func() {
			r := reg(nil, 1)
			r.Check = &api.AgentServiceCheck{CheckID: "check:web-1", TTL: "10m", Status: api.HealthPassing}
			must(t, "register", cl.Agent().ServiceRegister(r))
		}, func(c *mcpclient.Client) error {
			e, err := endpoint(c, host, addr)
			if err == nil {
				weight1 = e.GetWeight()
			}
			return err
		}},
		{"check critical", func() { must(t, "check", cl.Agent().UpdateTTL("check:web-1", "", api.HealthCritical)) }, absent},
		{"check passing", func() { must(t, "check", cl.Agent().UpdateTTL("check:web-1", "", api.HealthPassing)) }, present},
		{"tag change", func() { must(t, "re-register", cl.Agent().ServiceRegister(reg([]string{"color=green"}, 1))) },
			func(c *mcpclient.Client) error {
				if e, err := endpoint(c, host, addr); err != nil || e.GetLabels()["color"] != "green" {
					return fmt.Errorf("no label color=green yet (%v)", err)
				}
				return nil
			}},
		{"weight change", func() { must(t, "re-register", cl.Agent().ServiceRegister(reg([]string{"color=green"}, 5))) },
			func(c *mcpclient.Client) error {
				if e, err := endpoint(c, host, addr); err != nil || e.GetWeight() != 5*weight1 {
					return fmt.Errorf("weight not yet 5 x %d (%v)", weight1, err)
				}
				return nil
			}},
		{"maintenance on", func() { must(t, "maintenance", cl.Agent().EnableServiceMaintenance("web-1", "test")) }, absent},
		{"maintenance off", func() { must(t, "maintenance", cl.Agent().DisableServiceMaintenance("web-1")) }, present},
		{"deregister", func() { must(t, "deregister", cl.Agent().ServiceDeregister("web-1")) }, func(c *mcpclient.Client) error {
			if c.Entry(host) != nil {
				return errors.New("the ServiceEntry is still served")
			}
			return nil
		}},
	}
	// The first push (empty) must have arrived before latencies mean anything.
	must(t, "register seed", cl.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "seed-1", Name: "seed", Address: "127.0.0.9", Port: 80}))
	mc.WaitFor(t, 20*time.Second, "the seed service", func(c *mcpclient.Client) error { return servesHost(c, "seed.dc1.consul") })
	var all []time.Duration
	for round := range 3 {
		for _, s := range steps {
			start := time.Now()
			s.change()
			d := mc.WaitFor(t, 10*time.Second, s.name, s.done).Sub(start)
			all = append(all, d)
			if round == 0 {
				t.Logf("%-16s reached the MCP client in %v", s.name, d.Round(time.Millisecond))
			}
			if d > liveBound {
				t.Errorf("round %d: %s took %v to reach the MCP client, bound %v", round, s.name, d, liveBound)
			}
		}
	}
	slices.Sort(all)
	t.Logf("Consul change -> MCP client over %d changes: p50 %v, max %v (bound %v)", len(all),
		all[len(all)/2].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond), liveBound)
}

func servesHost(c *mcpclient.Client, host string) error {
	if c.Entry(host) == nil {
		return fmt.Errorf("no ServiceEntry for %s", host)
	}
	return nil
}

// TestPipelineDatacenters federates two agents over the WAN (dc1, dc2) and runs the bridge on
// dc1's agent with datacenters ["*"] and with [dc1, dc2]: the services of both datacenters are
// served as <service>.<dc>.consul with the datacenter as locality region. Then dc2's agent
// stops: dc2's services stay served as last read, the registry does not fail, and dc1's
// changes still reach the MCP client.
func TestPipelineDatacenters(t *testing.T) {
	dc1 := servers.StartConsul(t, servers.ConsulOptions{Datacenter: "dc1"})
	dc2 := servers.StartConsul(t, servers.ConsulOptions{Datacenter: "dc2", JoinWAN: dc1.WANAddr()})
	cl1, cl2 := client(t, dc1), client(t, dc2)
	servers.WaitFor(t, 30*time.Second, "dc1's agent to list both datacenters", func() error {
		dcs, err := cl1.Catalog().Datacenters()
		if err != nil || !slices.Equal(dcs, []string{"dc1", "dc2"}) {
			return fmt.Errorf("datacenters %v: %v", dcs, err)
		}
		return nil
	})
	must(t, "register in dc1", cl1.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "orders-1", Name: "orders", Address: "127.0.1.1", Port: 80,
		Meta: map[string]string{"zone": "zone-a"}}))
	must(t, "register in dc2", cl2.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "orders-1", Name: "orders", Address: "127.0.2.1", Port: 80,
		Meta: map[string]string{"zone": "zone-b"}}))
	must(t, "register in dc2", cl2.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "stock-1", Name: "stock", Address: "127.0.2.2", Port: 81}))

	type run struct {
		name string
		p    *pipeline.Pipeline
		mc   *mcpclient.Client
	}
	var runs []run
	for _, dcs := range [][]string{{consul.AllDatacenters}, {"dc1", "dc2"}} {
		p, mc := startPipeline(t, consul.Config{Address: consul.Addresses{dc1.Addr()}, Datacenters: dcs})
		runs = append(runs, run{fmt.Sprint(dcs), p, mc})
	}
	want := []struct{ host, addr, locality string }{
		{"orders.dc1.consul", "127.0.1.1", "dc1/zone-a"},
		{"orders.dc2.consul", "127.0.2.1", "dc2/zone-b"},
		{"stock.dc2.consul", "127.0.2.2", "dc2"},
	}
	served := func(c *mcpclient.Client) error {
		for _, w := range want {
			e, err := endpoint(c, w.host, w.addr)
			if err != nil {
				return err
			}
			if e.GetLocality() != w.locality {
				return fmt.Errorf("%s endpoint %s: locality %q, want %q", w.host, w.addr, e.GetLocality(), w.locality)
			}
		}
		return nil
	}
	for _, r := range runs {
		r.mc.WaitFor(t, 20*time.Second, r.name+": both datacenters' services", served)
	}

	dc2.Stop()
	for _, r := range runs {
		servers.WaitFor(t, 20*time.Second, r.name+": dc2 reported down", func() error {
			d := describe(r.p)
			if down, _ := d["datacentersDown"].(map[string]string); down["dc2"] == "" {
				return fmt.Errorf("status %v", d)
			}
			return nil
		})
	}
	start := time.Now()
	must(t, "register in dc1", cl1.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "orders-2", Name: "orders", Address: "127.0.1.2", Port: 80}))
	for _, r := range runs {
		at := r.mc.WaitFor(t, 10*time.Second, r.name+": dc1's new instance while dc2 is down", func(c *mcpclient.Client) error {
			_, err := endpoint(c, "orders.dc1.consul", "127.0.1.2")
			return err
		})
		t.Logf("%s: a dc1 change with dc2 down reached the MCP client in %v", r.name, at.Sub(start).Round(time.Millisecond))
		if err := served(r.mc); err != nil {
			t.Errorf("%s: with dc2 down: %v", r.name, err)
		}
		for _, st := range r.p.Merger().Status() {
			if st.Failures != 0 || st.LastError != "" {
				t.Errorf("%s: registry %s failed (%d failures, %q): one datacenter down must not fail the registry", r.name, st.Name, st.Failures, st.LastError)
			}
		}
	}
}

// describe returns the consul adapter's status as /debug/registries shows it.
func describe(p *pipeline.Pipeline) map[string]any {
	page, _ := p.Registries().(map[string]any)
	adapters, _ := page["adapters"].(map[string]any)
	d, _ := adapters["consul"].(map[string]any)
	return d
}
