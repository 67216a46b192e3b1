package zookeeper

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// TestInitialSyncScale measures the first full read of a Dubbo 2 estate from a real ZooKeeper:
// MCP_BRIDGE_ZK_SCALE=<interfaces>x<providers> (docs/benchmarks.md: 2000x20) sets its size, by
// default 100x5 so that the ordinary test run checks the read count. Every interface has the four
// categories Dubbo creates (providers, consumers, configurators, routers); providers carry
// parameters as long as the quick-start's. MCP_BRIDGE_ZK_READ_CONCURRENCY overrides readConcurrency.
func TestInitialSyncScale(t *testing.T) {
	ifaces, perIface := 100, 5
	if s := os.Getenv("MCP_BRIDGE_ZK_SCALE"); s != "" {
		a, b, ok := strings.Cut(s, "x")
		var err1, err2 error
		ifaces, err1 = strconv.Atoi(a)
		perIface, err2 = strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || ifaces < 1 || perIface < 1 {
			t.Fatalf("MCP_BRIDGE_ZK_SCALE=%q is not <interfaces>x<providers>", s)
		}
	}
	z := servers.StartZooKeeper(t)
	admin := zktest.Connect(t, z.Addr(), 30*time.Second)
	var entries []zktest.Node
	for i := 0; i < ifaces; i++ {
		iface := fmt.Sprintf("com.example.scale.v%d.Service%d", i%7, i)
		for _, cat := range []string{"consumers", "configurators", "routers"} {
			entries = append(entries, zktest.Node{Path: "/dubbo/" + iface + "/" + cat})
		}
		for j := 0; j < perIface; j++ {
			u := fmt.Sprintf("dubbo://10.%d.%d.%d:20880/%s?anyhost=true&application=scale-app-%d&background=false&deprecated=false"+
				"&dubbo=2.0.2&dynamic=true&generic=false&interface=%s&methods=create,delete,get,list,update&pid=%d"+
				"&release=3.2.0&service-name-mapping=true&side=provider&timestamp=1700000000000",
				(i/250)%250, i%250, j+1, iface, i%50, iface, 1000+j)
			entries = append(entries, zktest.Node{Path: zktest.ProviderPath("/dubbo", iface, u), Ephemeral: true})
		}
	}
	start := time.Now()
	zktest.CreateMany(t, admin, entries)
	t.Logf("wrote %d interfaces x %d providers in %v", ifaces, perIface, time.Since(start).Round(time.Millisecond))

	syncStart := time.Now()
	conc := 0 // the default
	if s := os.Getenv("MCP_BRIDGE_ZK_READ_CONCURRENCY"); s != "" {
		var err error
		if conc, err = strconv.Atoi(s); err != nil {
			t.Fatalf("MCP_BRIDGE_ZK_READ_CONCURRENCY=%q: %v", s, err)
		}
	}
	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: -1, ReadConcurrency: conc})
	r.sink.Wait(t, 10*time.Minute, "the first Replace", func() error {
		if n := r.sink.Count("replace"); n == 0 {
			return fmt.Errorf("not synced")
		}
		return nil
	})
	took := time.Since(syncStart)
	services := r.sink.Services()
	instances := 0
	for _, s := range services {
		instances += len(s.Instances)
	}
	reads := metricValue(t, r.reg, "mcp_bridge_zookeeper_last_full_sync_reads")
	syncOnly := metricValue(t, r.reg, "mcp_bridge_zookeeper_last_full_sync_duration_seconds")
	t.Logf("initial sync of %d interfaces x %d providers: %d services, %d instances in %v (adapter start to Replace; tree read %.3fs), %v znode reads, %d watches",
		ifaces, perIface, len(services), instances, took.Round(time.Millisecond), syncOnly, reads, r.a.Describe()["znodesWatched"])
	if len(services) != ifaces || instances != ifaces*perIface {
		t.Fatalf("%d services with %d instances, want %d with %d", len(services), instances, ifaces, ifaces*perIface)
	}
	// Reads: the root, each interface node, its four categories; the services, mapping and
	// governance roots, absent, cost one read and one exists watch each.
	if want := float64(1 + ifaces*5 + 6); reads != want {
		t.Errorf("%v znode reads, want %v", reads, want)
	}
}
