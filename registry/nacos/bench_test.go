package nacos_test

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// BenchmarkPolarisScale measures, against the real Nacos-protocol server, the initial sync of
// 1,000 services x 20 instances, the latency of 200 registrations (changes) through the adapter
// and the whole bridge path (the real pipeline package) to an MCP client, and the adapter's memory with that load. It runs
// once whatever b.N is:
//
//	go test ./registry/nacos -run '^$' -bench PolarisScale -benchtime 1x
func BenchmarkPolarisScale(b *testing.B) {
	const services, perService, changes = 1000, 20, 200
	p := servers.StartPolaris(b)
	addr := p.NacosAddr()

	// One registrar process registers everything, a batch per service.
	reg := nacostest.NewApp(b, addr, nacos.PublicNamespace)
	batch := func(svc, gen int) vo.BatchRegisterInstanceParam {
		ins := make([]vo.RegisterInstanceParam, perService)
		for i := range ins {
			ins[i] = vo.RegisterInstanceParam{
				Ip: fmt.Sprintf("10.%d.%d.%d", svc/250, svc%250, i+1), Port: 8080, Weight: 1,
				Enable: true, Healthy: true, Ephemeral: true,
				Metadata: map[string]string{"preserved.register.source": "SPRING_CLOUD", "version": "v1", "zone": "z1"},
			}
		}
		ins[0].Weight = float64(gen + 1)
		return vo.BatchRegisterInstanceParam{ServiceName: fmt.Sprintf("svc-%04d", svc), Instances: ins}
	}
	start := time.Now()
	for s := 0; s < services; s++ {
		if ok, err := reg.BatchRegisterInstance(batch(s, 0)); err != nil || !ok {
			// See register: the client's first request can race its own replay.
			if ok, err = reg.BatchRegisterInstance(batch(s, 0)); err != nil || !ok {
				b.Fatalf("batch register svc-%04d: ok=%v err=%v", s, ok, err)
			}
		}
	}
	b.Logf("registered %d services x %d instances in %v", services, perService, time.Since(start))
	time.Sleep(2 * time.Second) // Polaris' cache refresh

	// Phase 1: the adapter alone (its sink holds what the merge layer would): sync time and heap.
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	h0 := heap()
	cfg := nacos.ShortConfig(b, addr)
	cfg.PollInterval = 2 * time.Second
	allInSink := func(r *testkit.RecordSink) func() error {
		return func() error {
			n := 0
			for _, s := range r.Services() {
				n += len(s.Instances)
			}
			if n != services*perService {
				return fmt.Errorf("%d instances", n)
			}
			return nil
		}
	}
	start = time.Now()
	a, err := nacos.New(cfg, registry.Options{Name: "nacos", Logger: testkit.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	alone := testkit.Run(b, a)
	testkit.WaitFor(b, 5*time.Minute, "the full estate in the sink", allInSink(alone.Sink))
	syncTook := time.Since(start)
	h1 := heap()
	alone.Stop()

	// Phase 2: the adapter in the real pipeline (merge, translate, the MCP server) and an ADS
	// client.
	h2 := heap()
	watch := nacos.NewPushWatch()
	start = time.Now()
	pl := startPipeline(b, cfg, func(cfg nacos.Config, opts registry.Options) (*nacos.Adapter, error) {
		return nacos.NewWatchedAdapter(cfg, opts, watch)
	})
	r := pl.rec
	testkit.WaitFor(b, 5*time.Minute, "the full estate in the sink", allInSink(r))
	testkit.WaitFor(b, time.Minute, "every ServiceEntry at the MCP client", func() error {
		if n := pl.ads.Len(); n != services {
			return fmt.Errorf("%d ServiceEntries", n)
		}
		return nil
	})
	mcpTook := time.Since(start)
	h3 := heap()

	// Changes: one instance's weight per change, each on a different service, 50ms apart.
	type change struct{ reg, push, sink, mcp time.Time }
	results := make([]change, changes)
	var wg sync.WaitGroup
	for i := 0; i < changes; i++ {
		svc := (i * 7) % services
		name := fmt.Sprintf("svc-%04d", svc)
		wantWeight := uint32((i/services + 2) * 100)
		results[i].reg = time.Now()
		if ok, err := reg.BatchRegisterInstance(batch(svc, i/services+1)); err != nil || !ok {
			b.Fatalf("change %d: ok=%v err=%v", i, ok, err)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &results[i]
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) && (c.sink.IsZero() || c.mcp.IsZero()) {
				if c.sink.IsZero() {
					if s := r.Get(nacostest.AppKey(name)); s != nil && s.Instances[0].Weight == wantWeight {
						c.sink = r.LastUpsert(nacostest.AppKey(name))
						c.push = watch.At(name)
					}
				}
				if c.mcp.IsZero() {
					if se, at := pl.ads.Entry(host(name)), pl.ads.Changed(host(name)); se != nil && weightOf(se.Endpoints, fmt.Sprintf("10.%d.%d.1", svc/250, svc%250)) == wantWeight {
						c.mcp = at
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(i)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()

	var regPush, pushSink, sinkMCP, regSink, regMCP []time.Duration
	missing := 0
	for _, c := range results {
		if c.sink.IsZero() || c.mcp.IsZero() || c.push.IsZero() {
			missing++
			continue
		}
		regPush = append(regPush, c.push.Sub(c.reg))
		pushSink = append(pushSink, c.sink.Sub(c.push))
		sinkMCP = append(sinkMCP, c.mcp.Sub(c.sink))
		regSink = append(regSink, c.sink.Sub(c.reg))
		regMCP = append(regMCP, c.mcp.Sub(c.reg))
	}
	if missing > 0 {
		b.Errorf("%d of %d changes never arrived", missing, changes)
	}
	// Benchmark logs are cut after a few lines: one line says it all.
	lat := ""
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"register->push(Polaris+SDK)", regPush}, {"push->sink(adapter)", pushSink}, {"sink->MCP(merge+translate+mcp)", sinkMCP}, {"register->sink", regSink}, {"register->MCP", regMCP}} {
		lat += fmt.Sprintf("; %s p50 %v p99 %v", l.name, pct(l.d, 50), pct(l.d, 99))
	}
	b.Logf("sync %dx%d: sink %v, MCP client %v; heap adapter +%.1f MiB, adapter+pipeline +%.1f MiB; %d changes%s",
		services, perService, syncTook.Round(time.Millisecond), mcpTook.Round(time.Millisecond), mib(h1)-mib(h0), mib(h3)-mib(h2), len(regMCP), lat)
	b.ReportMetric(syncTook.Seconds(), "sync-s")
	b.ReportMetric(mib(h1)-mib(h0), "adapter-heap-MiB")
	b.ReportMetric(float64(pct(pushSink, 50).Microseconds()), "push-sink-p50-us")
	b.ReportMetric(float64(pct(regMCP, 50).Milliseconds()), "reg-mcp-p50-ms")
	b.ReportMetric(float64(pct(regMCP, 99).Milliseconds()), "reg-mcp-p99-ms")
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(100 * time.Microsecond)
}

func weightOf(eps []*networking.WorkloadEntry, address string) uint32 {
	for _, e := range eps {
		if e.Address == address {
			return e.Weight
		}
	}
	return 0
}
