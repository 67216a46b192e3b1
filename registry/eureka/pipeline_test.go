package eureka_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// bridge is the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs it: adapter,
// merge with its default debounce, translate, MCP server) for one Eureka registry named
// "eureka", configured from YAML as an operator would, and an MCP client subscribed to it.
type bridge struct {
	p        *pipeline.Pipeline
	client   *mcpclient.Client
	interval time.Duration
	quiet    time.Duration // merge's debounce: what the pipeline adds to a change on purpose
}

func startPipeline(t testing.TB, server string, interval time.Duration) *bridge {
	t.Helper()
	conf, err := config.Parse(fmt.Appendf(nil, `registries:
  - name: eureka
    type: eureka
    eureka:
      servers: [%q]
      interval: %s
      timeout: 30s
`, server, interval))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(conf, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &bridge{p: p, client: mcpclient.Serve(t, p), interval: interval, quiet: conf.Debounce.Quiet}
}

// syncStatus is the adapter's part of /debug/registries that the tests read.
type syncStatus struct {
	BytesFetched int64 `json:"bytesFetched"`
	Sync         struct {
		FullFetches    int `json:"fullFetches"`
		Deltas         int `json:"deltas"`
		HashMismatches int `json:"hashMismatches"`
		LastDeltaSize  int `json:"lastDeltaSize"`
	} `json:"sync"`
}

func (b *bridge) status(t testing.TB) syncStatus {
	t.Helper()
	raw, err := json.Marshal(b.p.Registries())
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Adapters map[string]syncStatus `json:"adapters"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	st, ok := page.Adapters["eureka"]
	if !ok {
		t.Fatalf("/debug/registries has no eureka adapter: %s", raw)
	}
	return st
}

// arrival is how long one change took: until Polaris's own API showed it, and until the MCP
// client received it. The difference is the bridge's part (at most one delta interval, the
// debounce and the work); the rest is Polaris's (its cache refresh, 1 s in e2e/servers/polaris.go).
type arrival struct{ polaris, client time.Duration }

func (a arrival) bridge() time.Duration { return a.client - a.polaris }

// observe makes a change through the Eureka API and waits until GET /apps/<app> shows it
// (polaris, on the compacted JSON) and the MCP client has it (client: nil once the host's entry
// is as wanted). The client's time is when the response carrying the change arrived.
func (b *bridge) observe(t testing.TB, timeout time.Duration, server, app, host string, change func(), polaris func(body string) bool, client func() error) arrival {
	t.Helper()
	start := time.Now()
	change()
	var a arrival
	testkit.WaitFor(t, timeout, "the change at Polaris and at the MCP client", func() error {
		if a.polaris == 0 {
			body, err := eurekatest.Get(server, "/apps/"+app)
			if err != nil {
				return err
			}
			var c bytes.Buffer
			if body == "" || json.Compact(&c, []byte(body)) != nil {
				c.WriteString(body)
			}
			if !polaris(c.String()) {
				return fmt.Errorf("Polaris does not show it yet: %.300s", c.String())
			}
			a.polaris = time.Since(start)
		}
		if err := client(); err != nil {
			return err
		}
		at := b.client.Changed(host)
		if at.Before(start) {
			return fmt.Errorf("%s has not changed since the change", host)
		}
		a.client = at.Sub(start)
		return nil
	})
	// Polled every 20 ms: Polaris's time is up to one poll late, so the bridge's part is never
	// below zero but may read up to 20 ms short.
	a.polaris = min(a.polaris, a.client)
	return a
}

// percentiles renders p50 and max of a list of durations.
func percentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %v, max %v", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// liveInterval is the delta interval of the pipeline's live test; liveSlack is what a loaded
// 2-core machine may add to the bridge's bound (one interval plus the debounce).
const (
	liveInterval = 300 * time.Millisecond
	liveSlack    = 3 * time.Second
)

// TestPipelineLive (issue 12): register, status override to OUT_OF_SERVICE and back, metadata
// change and cancel each reach a connected MCP client, through the real pipeline, within one
// delta interval plus the debounce (and slack) after Polaris shows them; Polaris's own delay is
// measured beside it and reported.
func TestPipelineLive(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	url := p.EurekaURL()
	const host = "orders.eureka"
	o1 := eurekatest.Instance{App: "ORDERS", ID: "o1", IP: "10.0.0.1", Port: 8080, Metadata: map[string]string{"version": "v1"}}
	eurekatest.Register(t, url, o1)
	b := startPipeline(t, url, liveInterval)
	testkit.WaitFor(t, 30*time.Second, "o1 at the MCP client", func() error {
		if b.client.Endpoint(host, "10.0.0.1") == nil {
			return fmt.Errorf("no endpoint 10.0.0.1 of %s (stream: %v)", host, b.client.Err())
		}
		return nil
	})

	o2 := eurekatest.Instance{App: "ORDERS", ID: "o2", IP: "10.0.0.2", Port: 8080, Metadata: map[string]string{"version": "v1"}}
	endpoint := func(want func(labels map[string]string) bool) func() error {
		return func() error {
			e := b.client.Endpoint(host, o2.IP)
			var labels map[string]string
			if e != nil {
				labels = e.Labels
			}
			if !want(labels) {
				return fmt.Errorf("o2's endpoint: present %t, labels %v", e != nil, labels)
			}
			return nil
		}
	}
	present := func(l map[string]string) bool { return l != nil && l["version"] == "v1" }
	absent := func(l map[string]string) bool { return l == nil }
	steps := []struct {
		name    string
		change  func()
		polaris func(body string) bool
		client  func() error
	}{
		{"register", func() { eurekatest.Register(t, url, o2) },
			func(s string) bool { return strings.Contains(s, `"instanceId":"o2"`) }, endpoint(present)},
		{"out of service", func() { eurekatest.SetStatus(t, url, "ORDERS", "o2", "OUT_OF_SERVICE") },
			func(s string) bool { return strings.Contains(s, `"OUT_OF_SERVICE"`) }, endpoint(absent)},
		{"back in service", func() { eurekatest.SetStatus(t, url, "ORDERS", "o2", "") },
			func(s string) bool { return !strings.Contains(s, `"OUT_OF_SERVICE"`) }, endpoint(present)},
		{"metadata change", func() {
			o2.Metadata = map[string]string{"version": "v2"}
			eurekatest.Register(t, url, o2) // Spring Cloud re-registers an instance whose metadata changed
		}, func(s string) bool { return strings.Contains(s, `"version":"v2"`) },
			endpoint(func(l map[string]string) bool { return l["version"] == "v2" })},
		{"cancel", func() { eurekatest.Cancel(t, url, "ORDERS", "o2") },
			func(s string) bool { return !strings.Contains(s, `"instanceId":"o2"`) }, endpoint(absent)},
	}
	var polaris, total, own []time.Duration
	for _, st := range steps {
		a := b.observe(t, 30*time.Second, url, "ORDERS", host, st.change, st.polaris, st.client)
		t.Logf("%s: Polaris showed it after %v, the MCP client had it after %v (bridge %v; interval %v)",
			st.name, a.polaris.Round(time.Millisecond), a.client.Round(time.Millisecond), a.bridge().Round(time.Millisecond), liveInterval)
		if bound := b.interval + b.quiet + liveSlack; a.bridge() > bound {
			t.Errorf("%s: the bridge took %v after Polaris showed the change; the bound is one interval + debounce + slack = %v", st.name, a.bridge(), bound)
		}
		polaris, total, own = append(polaris, a.polaris), append(total, a.client), append(own, a.bridge())
	}
	t.Logf("change -> MCP client (interval %v, debounce %v): total %s; Polaris %s; bridge %s; adapter %+v",
		liveInterval, b.quiet, percentiles(total), percentiles(polaris), percentiles(own), b.status(t).Sync)
}
