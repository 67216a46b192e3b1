// Package pipeline_test follows ZooKeeper registrations through the whole bridge (the real
// pipeline package: adapter, merge, bridge, MCP server) to an MCP client. It lives apart from the adapter's own tests so those
// build and run without the rest of the pipeline.
package pipeline_test

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry/zookeeper"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// startPipeline runs the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs it)
// for one ZooKeeper registry named "zk", in workloadEntry mode, with its MCP server on a loopback
// port, and subscribes to its ServiceEntries and WorkloadEntries as Istio >= 1.24 does.
func startPipeline(t testing.TB, zkCfg zookeeper.Config, debounce merge.Debounce) *mcpclient.Client {
	t.Helper()
	cfg := &config.Config{
		Registries: []config.Registry{{Name: "zk", Type: "zookeeper", Namespace: "zk", Config: &zkCfg}},
		Debounce:   debounce,
		Translate:  translate.Options{EndpointMode: translate.EndpointModeWorkloadEntry},
	}
	cfg.Translate.Registries = cfg.TranslateRegistries()
	p, err := pipeline.New(cfg, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return mcpclient.Subscribe(t, mcpclient.Start(t, p), mcpclient.ServiceEntries, mcpclient.WorkloadEntries)
}

// TestPipelineServiceEntriesAndWorkloadEntries registers Dubbo providers in a real ZooKeeper
// and follows them through the whole bridge to an MCP client: ServiceEntry and WorkloadEntry
// appear, a configurator's weight reaches the WorkloadEntry, deregistration removes them.
func TestPipelineServiceEntriesAndWorkloadEntries(t *testing.T) {
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	zktest.MkdirAll(t, admin, "/dubbo/com.example.Live/providers", nil)
	c := startPipeline(t, zookeeper.Config{Servers: []string{z.Addr()}, ResyncInterval: -1}, merge.Debounce{Quiet: 10 * time.Millisecond})
	prov := zktest.Session(t, z.Addr())
	node := zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.6.0.1", 20880))
	zktest.Create(t, prov, node, nil, true)
	c.WaitFor(t, 10*time.Second, "the ServiceEntry and WorkloadEntry", func(c *mcpclient.Client) error {
		se := c.Entry("com.example.live")
		if se == nil {
			return fmt.Errorf("no ServiceEntry for com.example.live")
		}
		we := c.Workload("10.6.0.1")
		if we == nil || we.GetWeight() != 100 {
			return fmt.Errorf("WorkloadEntry %v", we)
		}
		return nil
	})
	cfg := "/dubbo/com.example.Live/configurators/" + zktest.JavaURLEncode("override://10.6.0.1:20880/com.example.Live?category=configurators&dynamic=false&weight=40")
	zktest.Create(t, admin, cfg, nil, false)
	c.WaitFor(t, 10*time.Second, "the configured weight on the WorkloadEntry", func(c *mcpclient.Client) error {
		if we := c.Workload("10.6.0.1"); we == nil || we.GetWeight() != 40 {
			return fmt.Errorf("WorkloadEntry %v", we)
		}
		return nil
	})
	zktest.Delete(t, prov, node)
	c.WaitFor(t, 10*time.Second, "the WorkloadEntry and ServiceEntry to go", func(c *mcpclient.Client) error {
		if c.Workload("10.6.0.1") != nil || c.Entry("com.example.live") != nil {
			return fmt.Errorf("still served")
		}
		return nil
	})
}

// TestRegisterToSentLatency measures the time from a provider znode being created to its
// WorkloadEntry reaching a connected MCP client, over MCP_BRIDGE_ZK_LATENCY_CHANGES changes
// (default 10; docs/benchmarks.md uses 300), with the merge debounce at its default (100 ms quiet)
// or MCP_BRIDGE_ZK_LATENCY_QUIET.
func TestRegisterToSentLatency(t *testing.T) {
	n := envInt(t, "MCP_BRIDGE_ZK_LATENCY_CHANGES", 10)
	quiet := merge.DefaultQuiet
	if s := os.Getenv("MCP_BRIDGE_ZK_LATENCY_QUIET"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		quiet = d
	}
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	// A realistic background: 200 interfaces with 5 providers each.
	var bg []zktest.Node
	for i := 0; i < 200; i++ {
		for j := 0; j < 5; j++ {
			bg = append(bg, zktest.Node{Path: zktest.ProviderPath("/dubbo", fmt.Sprintf("com.example.bg.Service%d", i), fmt.Sprintf("dubbo://10.7.%d.%d:20880/com.example.bg.Service%d?interface=com.example.bg.Service%d&application=bg", i, j+1, i, i))})
		}
	}
	zktest.CreateMany(t, admin, bg)
	zktest.MkdirAll(t, admin, "/dubbo/com.example.Latency/providers", nil)
	c := startPipeline(t, zookeeper.Config{Servers: []string{z.Addr()}, ResyncInterval: -1}, merge.Debounce{Quiet: quiet})
	c.WaitFor(t, 30*time.Second, "the initial state", func(c *mcpclient.Client) error {
		if c.Workload("10.7.199.5") == nil {
			return fmt.Errorf("background not served yet")
		}
		return nil
	})
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("10.8.%d.%d", i/250, i%250+1)
		start := time.Now()
		zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Latency", fmt.Sprintf("dubbo://%s:20880/com.example.Latency?interface=com.example.Latency&application=lat", addr)), nil, false)
		c.WaitFor(t, 10*time.Second, "WorkloadEntry "+addr, func(c *mcpclient.Client) error {
			if c.Workload(addr) == nil {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		lat = append(lat, c.WorkloadChanged(addr).Sub(start))
		time.Sleep(quiet + 20*time.Millisecond) // let the debounce settle, so changes do not batch
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[int(math.Ceil(q*float64(len(lat))))-1] }
	t.Logf("register -> WorkloadEntry sent over %d changes (debounce quiet %v): p50 %v, p99 %v, max %v",
		n, quiet, pct(0.50).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	if pct(0.5) > quiet+time.Second {
		t.Errorf("p50 %v: the adapter adds more than a second beyond the debounce", pct(0.5))
	}
}

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive integer", name, s)
	}
	return n
}
