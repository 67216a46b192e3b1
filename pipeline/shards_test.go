package pipeline_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// TestShards runs the real pipeline with mcp.shards: 3 and an MCP client on every shard: each
// service's ServiceEntry is served by exactly one shard and the shards together serve them all
// (names never collide across shards), every shard has a share, readiness waits for the first
// push, and /debug/clients names the shard of each client.
func TestShards(t *testing.T) {
	const shards, services = 3, 24
	var doc strings.Builder
	doc.WriteString("services:\n")
	for i := range services {
		fmt.Fprintf(&doc, "  - name: svc-%d\n    ports: [{name: http, protocol: http}]\n    instances:\n      - {address: 10.3.0.%d, ports: {http: 8080}}\n", i, i+1)
	}
	path := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(path, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, "mcp: {address: '127.0.0.1:0', shards: %d}\ndebounce: {quiet: 10ms}\nregistries:\n  - {name: shop, type: file, file: {path: %s}}\n", shards, path))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(cfg, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Servers()); n != shards {
		t.Fatalf("%d MCP servers, want %d", n, shards)
	}
	if ok, why := p.Ready(); ok {
		t.Fatal("ready before anything ran")
	} else {
		t.Logf("not ready yet: %s", why)
	}
	addrs := mcpclient.StartShards(t, p)
	clients := make([]*mcpclient.Client, shards)
	// A client on shards 0 and 1 only: an Istiod whose configSources lack shard 2.
	for i, a := range addrs[:2] {
		clients[i] = mcpclient.Connect(t, a)
	}
	clients[1].WaitFor(t, 20*time.Second, "shard 1's share", func(c *mcpclient.Client) error {
		if len(p.ShardClients(0, -1).Clients) < 2 {
			return fmt.Errorf("not both streams open yet")
		}
		return nil
	})
	if gaps := p.ShardGaps(); len(gaps) != 1 || !slices.Equal(gaps[0].Missing, []string{"shard-2"}) || !slices.Equal(gaps[0].Connected, []string{"shard-0", "shard-1"}) {
		t.Errorf("shard gaps %+v, want one client missing shard-2", gaps)
	}
	clients[2] = mcpclient.Connect(t, addrs[2])
	total := func() int {
		n := 0
		for _, c := range clients {
			n += c.Len()
		}
		return n
	}
	for i, c := range clients {
		c.WaitFor(t, 20*time.Second, fmt.Sprintf("shard %d's share", i), func(c *mcpclient.Client) error {
			if c.Len() == 0 || total() != services {
				return fmt.Errorf("shard %d holds %d ServiceEntries, all shards %d, want %d in all", i, c.Len(), total(), services)
			}
			return nil
		})
	}
	for s := range services {
		host := fmt.Sprintf("svc-%d.file", s)
		var on []int
		for i, c := range clients {
			if c.Entry(host) != nil {
				on = append(on, i)
			}
		}
		if len(on) != 1 {
			t.Errorf("%s served by shards %v, want exactly one", host, on)
		}
	}
	if gaps := p.ShardGaps(); len(gaps) != 0 {
		t.Errorf("shard gaps %+v with a client on every shard, want none", gaps)
	}
	if ok, why := p.Ready(); !ok {
		t.Errorf("not ready after every shard served: %s", why)
	}
	page := p.ShardClients(0, -1)
	var got []string
	for _, c := range page.Clients {
		got = append(got, c.Shard)
	}
	slices.Sort(got)
	if want := []string{"shard-0", "shard-1", "shard-2"}; page.Total != shards || !slices.Equal(got, want) {
		t.Errorf("/debug/clients: %d clients on shards %v, want one on each of %v", page.Total, got, want)
	}
	if _, ok := p.Clients(0, -1).(pipeline.ShardClientPage); !ok {
		t.Errorf("/debug/clients with shards is a %T, want pipeline.ShardClientPage (each client naming its shard)", p.Clients(0, -1))
	}
}

// TestShardKeysAgreeAcrossProducers: the shard key of every WorkloadEntry, VirtualService and
// DestinationRule the real producers make (translate, the rules engine over the embedded example
// services and rules) is the key of a ServiceEntry, so a service and its rules' resources always
// share a shard: the producers agree on the service identity the key is made of.
func TestShardKeysAgreeAcrossProducers(t *testing.T) {
	for _, mode := range []string{"inline", "workloadEntry"} {
		t.Run(mode, func(t *testing.T) {
			cfg := config.Default()
			cfg.Translate.EndpointMode = mode
			r, err := pipeline.Render(t.Context(), cfg, pipeline.Options{}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			services := map[string]bool{}
			for _, se := range r.Output.Resources[istio.CollectionServiceEntry] {
				services[bridge.ShardKey(se)] = true
			}
			checked := map[string]int{}
			for _, coll := range []string{istio.CollectionWorkloadEntry, istio.CollectionVirtualService, istio.CollectionDestinationRule} {
				for _, res := range r.Output.Resources[coll] {
					checked[coll]++
					if k := bridge.ShardKey(res); !services[k] {
						t.Errorf("%s %s/%s has shard key %q, which no ServiceEntry has (ServiceEntry keys: %v)", coll, res.Namespace, res.Name, k, slices.Sorted(maps.Keys(services)))
					}
				}
			}
			if checked[istio.CollectionVirtualService] == 0 || checked[istio.CollectionDestinationRule] == 0 || mode == "workloadEntry" && checked[istio.CollectionWorkloadEntry] == 0 {
				t.Errorf("checked %v: the example rules should make VirtualServices and DestinationRules (and WorkloadEntries in workloadEntry mode)", checked)
			}
		})
	}
}
