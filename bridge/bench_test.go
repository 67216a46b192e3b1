package bridge

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// benchScale is the estate size: MCP_BRIDGE_BENCH_SCALE=<services>x<instances each>, default
// issue 2's 10000x10.
func benchScale(tb testing.TB) (services, per int) {
	s := os.Getenv("MCP_BRIDGE_BENCH_SCALE")
	if s == "" {
		return 10000, 10
	}
	a, b, ok := strings.Cut(s, "x")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 3 || m < 4 {
		tb.Fatalf("MCP_BRIDGE_BENCH_SCALE=%q is not <services>x<instances> (at least 3x4)", s)
	}
	return n, m
}

// changeTarget is the service the one-change benchmark edits: a Dubbo interface half-way
// through the estate. changed returns a new copy (a new pointer, as the merge layer hands
// translate a changed service) with one instance's weight set to w.
func changeTarget(services []*registry.Service) (int, func(w uint32) *registry.Service) {
	i := len(services) / 2
	i -= i % 3
	return i, func(w uint32) *registry.Service {
		c := services[i].Clone()
		c.Instances[3].Weight = w
		return c
	}
}

// BenchmarkPipeline measures the whole bridge (merge -> translate -> mcp.Server -> one ACKing
// SotW client over loopback gRPC) at MCP_BRIDGE_BENCH_SCALE (default 10k services, 100k
// instances), in both endpoint modes:
//
//   - full: a cold pipeline (new merger, translator and server, client subscribed) receives every
//     registry's full state; timed until the client has received every type's new version.
//   - one: on a warm pipeline, one instance of one service changes weight (Upsert); timed until
//     the client has the new version. Its set-up makes one cold full push too, and reports it
//     beside the one-change figures with their ratios: both are measured in the same run.
//
// cpu-ms/op is the process's user+system CPU (getrusage) over the timed part: the bridge AND the
// client, which share the process (the client only reads top-level response fields and ACKs).
// marshalled/op and marshalled-B/op are resources (and bytes) marshalled into MCP envelopes,
// built-B/op the SotW response bytes assembled, response-B/op what the client received, all from
// the mcp server's metrics and the client. heap-MiB is the Go heap the pipeline holds after the
// full push (merge state, translate caches and output, mcp snapshots), after a GC.
func BenchmarkPipeline(b *testing.B) {
	n, per := benchScale(b)
	services := estate(n, per)
	instances := float64(n * per)
	for _, mode := range []string{translate.EndpointModeInline, translate.EndpointModeWorkloadEntry} {
		b.Run(mode+"/full", func(b *testing.B) {
			b.ReportAllocs()
			var total cost
			total.marshalled = map[string]float64{}
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				p := newPipeline(b, mode)
				state := byRegistry(services)
				runtime.GC()
				b.StartTimer()
				r := p.read(b)
				p.replaceAll(b, state)
				c := p.since(b, r)
				b.StopTimer()
				total.add(c)
				p.close()
			}
			nf := float64(b.N)
			reportCost(b, total, nf)
			b.ReportMetric(float64(total.wall.Nanoseconds())/nf/instances, "ns/instance")
			b.ReportMetric(float64(total.cpu.Nanoseconds())/nf/instances, "cpu-ns/instance")
			b.ReportMetric(total.marshalledBytes/nf/instances, "marshalled-B/instance")
		})
		b.Run(mode+"/one", func(b *testing.B) {
			p := newPipeline(b, mode)
			defer p.close()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap0 := ms.HeapAlloc
			state := byRegistry(services)
			r := p.read(b)
			p.replaceAll(b, state)
			full := p.since(b, r)
			state = nil
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap := float64(ms.HeapAlloc-heap0) / (1 << 20)
			writeHeapProfile(b, mode)

			_, changed := changeTarget(services)
			b.ReportAllocs()
			runtime.GC()
			b.ResetTimer()
			r = p.read(b)
			for i := 0; i < b.N; i++ {
				p.upsert(b, changed(uint32(50+i%2*25)))
			}
			one := p.since(b, r)
			b.StopTimer()
			nf := float64(b.N)
			reportCost(b, one, nf)
			b.ReportMetric(float64(full.wall.Milliseconds()), "full-ms")
			b.ReportMetric(float64(full.cpu.Microseconds())/1e3, "full-cpu-ms")
			b.ReportMetric(full.marshalledBytes, "full-marshalled-B")
			b.ReportMetric(float64(one.wall.Nanoseconds())/nf/float64(full.wall.Nanoseconds()), "ratio-ns")
			b.ReportMetric(float64(one.cpu.Nanoseconds())/nf/float64(full.cpu.Nanoseconds()), "ratio-cpu")
			b.ReportMetric(one.marshalledBytes/nf/full.marshalledBytes, "ratio-marshalled-B")
			b.ReportMetric(heap, "heap-MiB")
		})
	}
}

func (c *cost) add(o cost) {
	c.wall += o.wall
	c.cpu += o.cpu
	for k, v := range o.marshalled {
		c.marshalled[k] += v
	}
	c.marshalledBytes += o.marshalledBytes
	c.builtBytes += o.builtBytes
	c.sentBytes += o.sentBytes
	c.received += o.received
	c.responses += o.responses
}

func reportCost(b *testing.B, c cost, n float64) {
	b.ReportMetric(float64(c.cpu.Microseconds())/1e3/n, "cpu-ms/op")
	b.ReportMetric(c.marshalledAll()/n, "marshalled/op")
	b.ReportMetric(c.marshalledBytes/n, "marshalled-B/op")
	b.ReportMetric(c.builtBytes/n, "built-B/op")
	b.ReportMetric(float64(c.received)/n, "response-B/op")
}

// TestPipelineOneChangeIsOChanged guards what makes a push O(changed) end to end: after one
// instance changes, the pipeline re-marshals exactly the resource that carries it (the
// ServiceEntry inline, the instance's WorkloadEntry in workloadEntry mode), translate hands back
// the very same *Resource for every other resource, and the client still receives the change. A
// change to a volatile label (dropped by translate) changes nothing at all.
func TestPipelineOneChangeIsOChanged(t *testing.T) {
	services := estate(500, 10)
	tests := []struct {
		mode               string
		changed, untouched string // collections
	}{
		{translate.EndpointModeInline, istio.CollectionServiceEntry, istio.CollectionWorkloadEntry},
		{translate.EndpointModeWorkloadEntry, istio.CollectionWorkloadEntry, istio.CollectionServiceEntry},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			p := newPipeline(t, tt.mode)
			defer p.close()
			r := p.read(t)
			p.replaceAll(t, byRegistry(services))
			full := p.since(t, r)
			wantAll := 500.0
			if tt.mode == translate.EndpointModeWorkloadEntry {
				wantAll += 5000
			}
			if got := full.marshalledAll(); got != wantAll {
				t.Fatalf("full push marshalled %v resources, want %v", got, wantAll)
			}
			before := resourcePointers(p.bridge.Output())
			versionsBefore := p.currentVersions(t)

			idx, changed := changeTarget(services)
			r = p.read(t)
			p.upsert(t, changed(7))
			one := p.since(t, r)
			if got := one.marshalled[tt.changed]; got != 1 {
				t.Errorf("one instance changed: %v %s marshalled, want 1", got, tt.changed)
			}
			if got := one.marshalled[tt.untouched]; got != 0 {
				t.Errorf("one instance changed: %v %s marshalled, want 0", got, tt.untouched)
			}
			if one.marshalledBytes*100 > full.marshalledBytes {
				t.Errorf("one instance changed: %v bytes marshalled, more than 1%% of the full push's %v", one.marshalledBytes, full.marshalledBytes)
			}
			after := resourcePointers(p.bridge.Output())
			var replaced []string
			for key, ptr := range after {
				if before[key] != ptr {
					replaced = append(replaced, key)
				}
			}
			if len(replaced) != 1 || !strings.HasPrefix(replaced[0], tt.changed+" ") {
				t.Errorf("translate returned new resources for %v, want exactly one %s", replaced, tt.changed)
			}
			versionsAfter := p.currentVersions(t)
			for u, v := range versionsAfter {
				moved := v != versionsBefore[u]
				if want := mcp.CollectionOf(u) == tt.changed; moved != want {
					t.Errorf("%s: version changed %v, want %v", u, moved, want)
				}
			}
			// State of the world: the response carrying the change is the whole collection.
			if got, want := p.client.lastResources(typeURLOf(tt.changed)), len(p.bridge.Output().Resources[tt.changed]); got != want {
				t.Errorf("the client's last %s response has %d resources, want all %d", tt.changed, got, want)
			}

			// A volatile label (Dubbo's timestamp) is dropped by translate: a new service pointer
			// whose output is identical must cost no marshal and no new version.
			c := services[idx].Clone()
			c.Instances[3].Weight = 7
			c.Instances[3].Labels["timestamp"] = "1799999999999"
			r = p.read(t)
			p.drainPushed()
			p.sinks[c.Registry].Upsert([]*registry.Service{c})
			select {
			case <-p.pushed:
			case <-time.After(time.Minute):
				t.Fatal("no push after the volatile-label change")
			}
			volatile := p.since(t, r)
			if got := volatile.marshalledAll(); got != 0 {
				t.Errorf("volatile label changed: %v resources marshalled, want 0", got)
			}
			for u, v := range p.currentVersions(t) {
				if v != versionsAfter[u] {
					t.Errorf("volatile label changed: %s moved to a new version", u)
				}
			}
		})
	}
}

// resourcePointers maps "<collection> <namespace>/<name>" to the served resource.
func resourcePointers(out *Output) map[string]*istio.Resource {
	m := map[string]*istio.Resource{}
	for coll, rs := range out.Resources {
		for _, r := range rs {
			m[fmt.Sprintf("%s %s/%s", coll, r.Namespace, r.Name)] = r
		}
	}
	return m
}

// typeURLOf is the v1 type URL Istiod 1.31 asks for a collection by.
func typeURLOf(collection string) string {
	group, kind, _ := strings.Cut(collection, "/")
	return group + "/v1/" + kind
}

// writeHeapProfile writes the heap profile of the warm pipeline (after the full push and a GC) to
// $MCP_BRIDGE_BENCH_HEAPPROFILE-<mode> when that is set: what the bridge holds per instance
// (docs/benchmarks.md "Bridge heap per instance"). go test's -memprofile is written after the
// pipeline is gone, so it cannot show this.
func writeHeapProfile(b *testing.B, mode string) {
	path := os.Getenv("MCP_BRIDGE_BENCH_HEAPPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path + "-" + mode)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
