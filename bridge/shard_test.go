package bridge

import (
	"fmt"
	"hash/fnv"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
)

func TestShardKey(t *testing.T) {
	tests := []struct {
		name string
		r    istio.Resource
		want string
	}{
		{"ServiceEntry: its service", istio.Resource{Collection: istio.CollectionServiceEntry, Namespace: "shop", Name: "orders.file", Source: "file/orders"}, "file/orders"},
		{"WorkloadEntry: its service, without the instance", istio.Resource{Collection: istio.CollectionWorkloadEntry, Namespace: "shop", Name: "orders-10-0-0-1", Source: "file/orders#10.0.0.1:8080"}, "file/orders"},
		{"VirtualService of a rule: the service it routes", istio.Resource{Collection: istio.CollectionVirtualService, Namespace: "shop", Name: "orders.file", Source: "file/orders"}, "file/orders"},
		{"DestinationRule of a rule: the service it routes", istio.Resource{Collection: istio.CollectionDestinationRule, Namespace: "shop", Name: "orders.file", Source: "file/orders"}, "file/orders"},
		{"a '#' in the service key cuts every resource of the service alike", istio.Resource{Collection: istio.CollectionServiceEntry, Name: "x", Source: "zk/a#b:1.0:"}, "zk/a"},
		{"Sidecar: its own namespace/name", istio.Resource{Collection: istio.CollectionSidecar, Namespace: "shop", Name: "web", Source: "consumer/web"}, "shop/web"},
		{"static: its own namespace/name", istio.Resource{Collection: istio.CollectionVirtualService, Namespace: "default", Name: "legacy", Source: sourceStatic}, "default/legacy"},
		{"no source: its own namespace/name", istio.Resource{Collection: istio.CollectionServiceEntry, Namespace: "default", Name: "x"}, "default/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShardKey(&tt.r); got != tt.want {
				t.Errorf("ShardKey = %q, want %q", got, tt.want)
			}
		})
	}
}

// The shard function is documented as FNV-1a 64 modulo the shard count: a replica, another
// version or an operator's script must compute the same shard.
func TestShardOfIsFNV1a64(t *testing.T) {
	for i := range 200 {
		r := &istio.Resource{Collection: istio.CollectionServiceEntry, Source: fmt.Sprintf("reg/svc-%d", i)}
		h := fnv.New64a()
		h.Write([]byte(r.Source))
		for _, n := range []int{1, 2, 3, 8} {
			if got, want := ShardOf(r, n), int(h.Sum64()%uint64(n)); got != want {
				t.Fatalf("ShardOf(%q, %d) = %d, want %d", r.Source, n, got, want)
			}
		}
	}
}

// shardedBridge is a bridge over n real MCP servers sharing one metrics registry, labelled
// server=shard-<i> as the pipeline labels them.
func shardedBridge(t *testing.T, n int, p Producer) (*Bridge, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	servers := make([]*mcp.Server, n)
	for i := range servers {
		servers[i] = mcp.NewServer(mcp.Options{Name: fmt.Sprintf("shard-%d", i), Metrics: reg})
	}
	return New(Options{Producers: []Producer{p}, Shards: servers, DrainGrace: -1}), reg
}

func TestShardedPush(t *testing.T) {
	const n, services = 3, 30
	p := &scriptProducer{cache: map[string]*istio.Resource{}, cur: map[string]svcState{}}
	for i := range services {
		p.cur[fmt.Sprintf("svc-%02d", i)] = svcState{[]string{"10.0.0.1", fmt.Sprintf("we:10.1.0.%d", i), fmt.Sprintf("we:10.2.0.%d", i)}, "baseline"}
	}
	b, reg := shardedBridge(t, n, p)
	b.Push(&merge.Snapshot{})

	// Every resource is in exactly one shard, every resource of a service in the same one.
	shardOf := map[string]int{} // collection/name -> shard
	serviceShard := map[string]int{}
	for i, parts := range b.shards.parts {
		for coll, rs := range parts {
			for _, r := range rs {
				key := coll + "/" + r.Namespace + "/" + r.Name
				if j, dup := shardOf[key]; dup {
					t.Errorf("%s served by shards %d and %d", key, j, i)
				}
				shardOf[key] = i
			}
			if got := metricSum(reg, "mcp_bridge_mcp_resources", i, coll); int(got) != len(rs) {
				t.Errorf("shard %d serves %v %s, the bridge handed it %d", i, got, coll, len(rs))
			}
		}
	}
	served := 0
	for coll, rs := range b.Output().Resources {
		served += len(rs)
		for _, r := range rs {
			i, ok := shardOf[coll+"/"+r.Namespace+"/"+r.Name]
			if !ok {
				t.Errorf("%s %s served by no shard", coll, r.Name)
				continue
			}
			svc := r.Name[:len("svc-00")] // scriptProducer names every resource after its service
			if j, seen := serviceShard[svc]; seen && j != i {
				t.Errorf("service %s is split over shards %d and %d (%s %s)", svc, j, i, coll, r.Name)
			}
			serviceShard[svc] = i
		}
	}
	if served != len(shardOf) || served != services*4 {
		t.Errorf("%d resources served, %d in shards, want %d", served, len(shardOf), services*4)
	}
	perShard := make([]int, n)
	for _, i := range serviceShard {
		perShard[i]++
	}
	for i, c := range perShard {
		if c == 0 {
			t.Errorf("shard %d got no service of %d: %v", i, services, perShard)
		}
	}

	// One service changes (an endpoint and its route): only its shard marshals and rebuilds.
	before := make([]float64, n)
	for i := range before {
		before[i] = metricSum(reg, "mcp_bridge_mcp_resources_marshalled_total", i, "")
	}
	p.cur["svc-07"] = svcState{[]string{"10.0.0.9", "we:10.1.0.7", "we:10.2.0.7"}, "canary"}
	b.Push(&merge.Snapshot{})
	home := serviceShard["svc-07"]
	for i := range before {
		moved := metricSum(reg, "mcp_bridge_mcp_resources_marshalled_total", i, "") - before[i]
		switch {
		case i == home && moved != 2:
			t.Errorf("shard %d (the service's) marshalled %v resources, want 2 (ServiceEntry and VirtualService)", i, moved)
		case i != home && moved != 0:
			t.Errorf("shard %d marshalled %v resources for another shard's service", i, moved)
		}
	}
}

// metricSum sums a gauge's or counter's series of one shard (and one collection unless "").
func metricSum(reg *prometheus.Registry, name string, shard int, coll string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["server"] != fmt.Sprintf("shard-%d", shard) || coll != "" && labels["collection"] != coll {
				continue
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// BenchmarkShardedOneChange is the cost of one push in which one WorkloadEntry of 100,000
// changed, over 1 and 8 shards: the split (a pointer walk, hashing only the changed resource)
// plus the changed shard's Set.
func BenchmarkShardedOneChange(b *testing.B) {
	const n = 100000
	in := make([]*istio.Resource, n)
	for i := range in {
		in[i] = &istio.Resource{Collection: istio.CollectionWorkloadEntry, Namespace: "shop", Name: fmt.Sprintf("we-%06d", i),
			Source: fmt.Sprintf("reg/svc-%d#%d", i/10, i%10), Version: "v1", Body: &anypb.Any{TypeUrl: "t", Value: []byte{1}}}
	}
	for _, shards := range []int{1, 8} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			servers := make([]*mcp.Server, shards)
			for i := range servers {
				servers[i] = mcp.NewServer(mcp.Options{})
			}
			s := newShards(servers)
			cur := slices.Clone(in)
			out := make([]*mcp.Resource, n)
			for i, r := range cur {
				out[i] = toMCP(r)
			}
			s.set(map[string][]*istio.Resource{istio.CollectionWorkloadEntry: cur}, map[string][]*mcp.Resource{istio.CollectionWorkloadEntry: out}, time.Time{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := n / 2
				r := *cur[j]
				r.Version = fmt.Sprint("v", i+2)
				cur, out = slices.Clone(cur), slices.Clone(out)
				cur[j], out[j] = &r, toMCP(&r)
				s.set(map[string][]*istio.Resource{istio.CollectionWorkloadEntry: cur}, map[string][]*mcp.Resource{istio.CollectionWorkloadEntry: out}, time.Time{})
			}
		})
	}
}
