package consul

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
)

// TestScale measures the numbers of docs/benchmarks.md: initial sync of services x instances in a
// real agent, check-state change -> sink latency, and requests per minute at rest and under 10
// changes/s. It runs only when MCP_BRIDGE_CONSUL_SCALE is set ("1000x10"):
//
//	MCP_BRIDGE_CONSUL_SCALE=1000x10 go test ./registry/consul -run TestScale -count=1 -v -timeout 20m
func TestScale(t *testing.T) {
	spec := os.Getenv("MCP_BRIDGE_CONSUL_SCALE")
	if spec == "" {
		t.Skip("set MCP_BRIDGE_CONSUL_SCALE=1000x10 to run")
	}
	var nSvc, nInst int
	if _, err := fmt.Sscanf(spec, "%dx%d", &nSvc, &nInst); err != nil || nSvc < 1 || nInst < 1 {
		t.Fatalf("MCP_BRIDGE_CONSUL_SCALE=%q is not <services>x<instances>", spec)
	}
	// One blocking query per watched service: the agent's default limit of 200 concurrent
	// connections per client address must be raised above the number of services.
	agent := servers.StartConsul(t, servers.ConsulOptions{HCL: []string{fmt.Sprintf("limits { http_max_conns_per_client = %d }", nSvc+100)}})
	cl := agentClient(t, agent, "")
	// Instances on nInst nodes, registered in the catalog as an external registrar would (the
	// agent's own services would all sit on one node).
	catalogReg := func(svc, inst int, status string) *api.CatalogRegistration {
		node := fmt.Sprintf("node-%d", inst)
		id := fmt.Sprintf("svc-%04d-%d", svc, inst)
		return &api.CatalogRegistration{Node: node, Address: fmt.Sprintf("10.1.%d.%d", inst/250, inst%250+1), SkipNodeUpdate: true,
			Service: &api.AgentService{ID: id, Service: fmt.Sprintf("svc-%04d", svc), Port: 8080},
			Check:   &api.AgentCheck{Node: node, CheckID: "check-" + id, Name: "http", Status: status, ServiceID: id}}
	}
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan [2]int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				if _, err := cl.Catalog().Register(catalogReg(w[0], w[1], api.HealthPassing), nil); err != nil {
					t.Errorf("register: %v", err)
				}
			}
		}()
	}
	for s := range nSvc {
		for i := range nInst {
			work <- [2]int{s, i}
		}
	}
	close(work)
	wg.Wait()
	t.Logf("registered %d x %d in %v", nSvc, nInst, time.Since(start).Round(time.Millisecond))

	runAt := time.Now()
	a, sink := startAdapter(t, Config{Address: Addresses{agent.Addr()}})
	waitFor(t, sink, 5*time.Minute, "the initial sync", func(r *testkit.RecordSink) bool { return len(r.Events()) > 0 && r.Events()[0].Op == "replace" })
	t.Logf("initial sync: %v to Replace with %d services", sink.Events()[0].At.Sub(runAt).Round(time.Millisecond), len(sink.Events()[0].Services))

	// Check-state changes, one at a time, each on a random instance.
	var lat []time.Duration
	var lastS, lastI int
	for n := range 200 {
		s, i := rand.IntN(nSvc), rand.IntN(nInst)
		status := api.HealthCritical
		if n%2 == 1 {
			status = api.HealthPassing
		}
		// Flip the same instance back on odd steps.
		if n%2 == 1 {
			s, i = lastS, lastI
		}
		lastS, lastI = s, i
		if _, err := cl.Catalog().Register(catalogReg(s, i, status), nil); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		id := fmt.Sprintf("node-%d/svc-%04d-%d", i, s, i)
		done := waitFor(t, sink, 30*time.Second, "check change "+id, func(r *testkit.RecordSink) bool {
			in, err := findInstance(r.Get(appKey(dc, fmt.Sprintf("svc-%04d", s))), id)
			return err == nil && in.Healthy == (status == api.HealthPassing)
		})
		lat = append(lat, done.Sub(at))
	}
	slices.Sort(lat)
	t.Logf("check change -> sink: p50 %v p99 %v max %v (n=%d)", lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], len(lat))

	const window = 30 * time.Second
	before := requests(a)
	time.Sleep(window) // at rest: the quantity measured is requests in this window
	rest := requests(a) - before
	before = requests(a)
	end := time.Now().Add(window)
	changes := 0
	for tick := time.NewTicker(100 * time.Millisecond); time.Now().Before(end); <-tick.C {
		s, i := rand.IntN(nSvc), rand.IntN(nInst)
		status := api.HealthPassing
		if changes%2 == 0 {
			status = api.HealthWarning
		}
		if _, err := cl.Catalog().Register(catalogReg(s, i, status), nil); err != nil {
			t.Fatal(err)
		}
		changes++
	}
	churn := requests(a) - before
	t.Logf("requests/minute: at rest %.0f (window %v, wait 5m, %d queries), under %d changes in %v: %.0f",
		float64(rest)*float64(time.Minute)/float64(window), window, nSvc+1, changes, window, float64(churn)*float64(time.Minute)/float64(window))
}
