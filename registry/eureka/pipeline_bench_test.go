package eureka_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
)

// BenchmarkPolarisScale measures the real pipeline (adapter, merge, translate, MCP server, an MCP
// client) against the real Eureka-protocol server (Polaris), with MCP_BRIDGE_EUREKA_SCALE apps x
// instances (default 500x10): the initial sync (pipeline start -> every ServiceEntry with all its
// endpoints at the MCP client), the bytes fetched per interval at rest (deltas, after Polaris's
// 60 s delta window has forgotten the registrations) and change -> sent (OUT_OF_SERVICE through
// the Eureka API -> the endpoint gone at the MCP client), split into Polaris's part (until its
// own API shows the change) and the bridge's. It runs once whatever b.N is:
//
//	go test ./registry/eureka -run '^$' -bench PolarisScale -benchtime 1x -timeout 20m -v
func BenchmarkPolarisScale(b *testing.B) {
	apps, per := 500, 10
	if s := os.Getenv("MCP_BRIDGE_EUREKA_SCALE"); s != "" {
		if _, err := fmt.Sscanf(s, "%dx%d", &apps, &per); err != nil {
			b.Fatalf("MCP_BRIDGE_EUREKA_SCALE=%q: want APPSxINSTANCES", s)
		}
	}
	const interval, changes = time.Second, 20
	p := servers.StartPolaris(b)
	url := p.EurekaURL()
	instanceOf := func(a, i int) eurekatest.Instance {
		ip := fmt.Sprintf("10.%d.%d.%d", a/250, a%250, i+1)
		return eurekatest.Instance{App: fmt.Sprintf("APP-%04d", a), ID: ip + ":8080", IP: ip, Port: 8080,
			Metadata: map[string]string{"version": "v1", "zone": "zone-a", "management.port": "8081"}}
	}
	hostOf := func(a int) string { return strings.ToLower(instanceOf(a, 0).App) + ".eureka" }
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan eurekatest.Instance)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				eurekatest.Register(b, url, in)
			}
		}()
	}
	for a := 0; a < apps; a++ {
		for i := 0; i < per; i++ {
			work <- instanceOf(a, i)
		}
	}
	close(work)
	wg.Wait()
	b.Logf("registered %d apps x %d instances in %v", apps, per, time.Since(start).Round(time.Millisecond))
	// Every instance renews its lease every ~20 s, as Eureka clients do (every 30 s): without
	// renewals Polaris marks instances unhealthy after their lease, changes of its own.
	stopBeats := make(chan struct{})
	beatsDone := make(chan struct{})
	var beatErrs atomic.Int64
	go func() {
		defer close(beatsDone)
		for {
			for a := 0; a < apps; a++ {
				for i := 0; i < per; i++ {
					select {
					case <-stopBeats:
						return
					default:
					}
					in := instanceOf(a, i)
					if eurekatest.Do(http.MethodPut, url+"/apps/"+in.App+"/"+in.ID, nil) != nil {
						beatErrs.Add(1)
					}
				}
			}
			select {
			case <-stopBeats:
				return
			case <-time.After(20 * time.Second):
			}
		}
	}()
	defer func() {
		close(stopBeats)
		<-beatsDone
		if n := beatErrs.Load(); n > 0 {
			b.Logf("%d lease renewals failed", n)
		}
	}()
	time.Sleep(2 * time.Second) // Polaris's cache refresh

	start = time.Now()
	br := startPipeline(b, url, interval)
	testkit.WaitFor(b, 5*time.Minute, "every endpoint at the MCP client", func() error {
		if n := br.client.Len(); n != apps {
			return fmt.Errorf("%d ServiceEntries", n)
		}
		for a := 0; a < apps; a++ {
			if se := br.client.Entry(hostOf(a)); len(se.GetEndpoints()) != per {
				return fmt.Errorf("%s has %d endpoints", hostOf(a), len(se.GetEndpoints()))
			}
		}
		return nil
	})
	full := br.status(b).BytesFetched
	b.Logf("initial sync: %v from pipeline start to every endpoint at the MCP client; full fetch %d bytes (%d per instance)",
		time.Since(start).Round(time.Millisecond), full, full/int64(apps*per))

	// At rest. Polaris's delta lists every instance changed in the last deltaExpireInterval
	// (60 s here, e2e/servers/polaris.go; Eureka's own server keeps 3 min): wait it out.
	atRest := func(what string) {
		st0 := br.status(b)
		time.Sleep(10 * interval)
		st1 := br.status(b)
		d := st1.Sync.Deltas - st0.Sync.Deltas
		if d == 0 {
			b.Fatalf("%s: no delta fetched", what)
		}
		per := (st1.BytesFetched - st0.BytesFetched) / int64(d)
		b.Logf("%s: %d deltas, %d full fetches, %d bytes per interval (a full fetch is %.0fx that)",
			what, d, st1.Sync.FullFetches-st0.Sync.FullFetches, per, float64(full)/float64(max(per, 1)))
	}
	atRest("at rest inside Polaris's delta window")
	took := testkit.WaitFor(b, 3*time.Minute, "Polaris's delta window to pass", func() error {
		if st := br.status(b); st.Sync.LastDeltaSize > 0 {
			return fmt.Errorf("the last delta listed %d instances", st.Sync.LastDeltaSize)
		}
		return nil
	})
	b.Logf("deltas were empty %v after the initial sync", took.Round(time.Second))
	atRest("at rest")

	// Changes: OUT_OF_SERVICE on one instance of a different app each, 200 ms apart.
	var polaris, total, own []time.Duration
	for c := 0; c < changes; c++ {
		app := (c * 37) % apps
		in := instanceOf(app, c%per)
		a := br.observe(b, time.Minute, url, in.App, hostOf(app),
			func() { eurekatest.SetStatus(b, url, in.App, in.ID, "OUT_OF_SERVICE") },
			func(s string) bool { return strings.Contains(s, `"OUT_OF_SERVICE"`) },
			func() error {
				if br.client.Endpoint(hostOf(app), in.IP) != nil {
					return fmt.Errorf("%s still at the MCP client", in.ID)
				}
				return nil
			})
		polaris, total, own = append(polaris, a.polaris), append(total, a.client), append(own, a.bridge())
		time.Sleep(200 * time.Millisecond)
	}
	st := br.status(b)
	b.Logf("change -> MCP client (interval %v, debounce %v), %d changes: total %s; Polaris %s; bridge %s; full fetches %d, deltas %d, hash mismatches %d",
		interval, br.quiet, changes, percentiles(total), percentiles(polaris), percentiles(own), st.Sync.FullFetches, st.Sync.Deltas, st.Sync.HashMismatches)
}
