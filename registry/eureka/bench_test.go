package eureka

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// BenchmarkPolarisScale measures against the real Eureka-protocol server (Polaris), with
// MCP_BRIDGE_EUREKA_SCALE apps x instances (default 500x10): the initial sync (adapter start ->
// every instance in the sink), the bytes fetched per interval at rest (deltas, after Polaris's
// 60 s delta window has forgotten the registrations) and the latency of status changes
// (OUT_OF_SERVICE through the Eureka API -> the instance disabled in the sink). It runs once
// whatever b.N is:
//
//	go test ./registry/eureka -run '^$' -bench PolarisScale -benchtime 1x -timeout 20m
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
	instanceOf := func(a, i int) springInstance {
		ip := fmt.Sprintf("10.%d.%d.%d", a/250, a%250, i+1)
		return springInstance{App: fmt.Sprintf("APP-%04d", a), ID: ip + ":8080", IP: ip, Port: 8080,
			Metadata: map[string]string{"version": "v1", "zone": "zone-a", "management.port": "8081"}}
	}
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan springInstance)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				register(b, url, in)
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
	// Every instance renews its lease every 30 s, as Eureka clients do: without renewals Polaris
	// marks instances unhealthy (DOWN) after their lease, which would be changes of its own.
	stopBeats := make(chan struct{})
	beatsDone := make(chan struct{})
	go func() {
		defer close(beatsDone)
		for {
			for a := 0; a < apps; a++ {
				for i := 0; i < per; i++ {
					in := instanceOf(a, i)
					select {
					case <-stopBeats:
						return
					default:
					}
					eurekaCall(b, http.MethodPut, url+"/apps/"+in.App+"/"+in.ID, nil)
				}
			}
			select {
			case <-stopBeats:
				return
			case <-time.After(20 * time.Second):
			}
		}
	}()
	defer func() { close(stopBeats); <-beatsDone }()
	time.Sleep(2 * time.Second) // Polaris's cache refresh

	cfg := Config{Servers: []string{url}, Interval: interval, Timeout: 30 * time.Second}
	start = time.Now()
	a, sink := startAdapter(b, cfg)
	waitFor(b, 5*time.Minute, "every instance in the sink", func() error {
		n := 0
		for _, s := range sink.services() {
			n += len(s.Instances)
		}
		if n != apps*per {
			return fmt.Errorf("%d instances", n)
		}
		return nil
	})
	b.Logf("initial sync: %v to every instance in the sink; full fetch %d bytes", time.Since(start).Round(time.Millisecond), a.client.fetched())

	// At rest. Polaris's delta lists every instance changed in the last deltaExpireInterval
	// (60 s here, e2e/servers/polaris.go; Eureka's own server keeps 3 min): wait it out.
	atRest := func(what string) {
		st0, f0 := a.Describe()["sync"].(status), a.client.fetched()
		time.Sleep(10 * interval)
		st1, f1 := a.Describe()["sync"].(status), a.client.fetched()
		d := st1.Deltas - st0.Deltas
		if d == 0 {
			b.Fatalf("%s: no delta fetched", what)
		}
		b.Logf("%s: %d deltas, %d full fetches, %d bytes per interval", what, d, st1.FullFetches-st0.FullFetches, (f1-f0)/int64(d))
	}
	atRest("at rest inside Polaris's delta window")
	took := waitFor(b, 3*time.Minute, "Polaris's delta window to pass", func() error {
		if st := a.Describe()["sync"].(status); st.LastDeltaSize > 0 {
			return fmt.Errorf("the last delta listed %d instances", st.LastDeltaSize)
		}
		return nil
	})
	b.Logf("deltas were empty %v after the initial sync", took.Round(time.Second))
	atRest("at rest")

	// Changes: OUT_OF_SERVICE on one instance of a different app each, 200 ms apart.
	var lat []time.Duration
	for c := 0; c < changes; c++ {
		in := instanceOf((c*37)%apps, c%per)
		setStatus(b, url, in.App, in.ID, StatusOutOfService)
		took := waitFor(b, 30*time.Second, "the change in the sink", func() error {
			if s := sink.get(in.App); s != nil {
				for _, x := range s.Instances {
					if x.ID == in.ID && !x.Enabled {
						return nil
					}
				}
			}
			return fmt.Errorf("not yet")
		})
		lat = append(lat, took)
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(lat)
	st := a.Describe()["sync"].(status)
	b.Logf("change -> sink (interval %v): p50 %v, p90 %v, max %v; full fetches %d, deltas %d, hash mismatches %d",
		interval, lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*9/10].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
		st.FullFetches, st.Deltas, st.HashMismatches)
}
