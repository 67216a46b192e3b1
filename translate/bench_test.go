package translate

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/internal/benchestate"
	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// estate builds n services of perService instances each, shaped like a real mixed estate: Dubbo
// interfaces, Dubbo 3 applications with two ports, Spring Cloud services. Every instance carries
// the same Dubbo provider-URL labels, whatever its kind: the recorded translate results were
// measured on that.
func estate(n, perService int) []*registry.Service {
	return benchestate.Estate(n, perService, benchestate.Options{AppPrefix: "app-", Labels: providerURLLabels})
}

func providerURLLabels(_ *registry.Service, i, j int) map[string]string {
	return map[string]string{
		"application": fmt.Sprintf("app-%d", i), "side": "provider", "release": "3.2.10", "dubbo": "2.0.2",
		"version": fmt.Sprintf("v%d", j%2), "anyhost": "true", "timestamp": "1712345678901", "pid": "4242",
		"methods": "create,get,list,update,delete",
	}
}

func benchOptions(mode string) Options {
	return Options{EndpointMode: mode, MaxWorkloadEntriesPerNamespace: -1, Registries: []RegistryOptions{
		{Name: benchestate.RegistryZK, Hosts: zookeeperHosts}, {Name: benchestate.RegistryNacos, Hosts: nacosHosts},
	}}
}

const (
	benchServices    = 10000
	benchPerInstance = 10
)

// BenchmarkTranslateFull: a fresh Translator translating 10k services with 100k instances.
func BenchmarkTranslateFull(b *testing.B) {
	services := estate(benchServices, benchPerInstance)
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr, err := New(benchOptions(mode))
				if err != nil {
					b.Fatal(err)
				}
				tr.Translate(services)
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(benchServices*benchPerInstance)
			b.ReportMetric(per, "ns/instance")
		})
	}
}

// BenchmarkTranslateOneChange: after a full translate, one instance of one service changes (the
// service arrives as a new pointer, as the merge layer sends it) and the full list is translated
// again. It also reports one full translate measured in the same run, the ratio between the two,
// and the heap the Translator keeps for 10k services (caches and output).
//
// In "workloadEntry-capped" the default cap of 10000 WorkloadEntries per namespace is in force (the
// estate has 67k and 33k in its two namespaces) and the change takes an instance out (unhealthy),
// so the namespace's admission is worked out again: the worst case for one change.
func BenchmarkTranslateOneChange(b *testing.B) {
	services := estate(benchServices, benchPerInstance)
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry, "workloadEntry-capped"} {
		b.Run(mode, func(b *testing.B) {
			o := benchOptions(mode)
			capped := mode == "workloadEntry-capped"
			if capped {
				o = benchOptions(EndpointModeWorkloadEntry)
				o.MaxWorkloadEntriesPerNamespace = 0
			}
			tr, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			heap := m.HeapAlloc
			start := time.Now()
			tr.Translate(services)
			full := time.Since(start)
			runtime.GC()
			runtime.ReadMemStats(&m)
			retained := float64(m.HeapAlloc-heap) / (1 << 20)

			// Alternate between two versions of service 4242, each a distinct pointer.
			in := slices.Clone(services)
			variants := [2]*registry.Service{}
			for k := range variants {
				c := services[4242].Clone()
				c.Instances[3].Weight = uint32(10 + k)
				if capped {
					c.Instances[3].Healthy = k == 0
				}
				variants[k] = c
			}
			b.ReportAllocs()
			b.ResetTimer()
			k := 0
			for b.Loop() {
				in[4242] = variants[k%2]
				k++
				out := tr.Translate(in)
				if len(out.Resources[istio.CollectionServiceEntry]) == 0 {
					b.Fatal("no output")
				}
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(full.Milliseconds()), "full-ms")
			b.ReportMetric(retained, "retained-MiB")
			b.ReportMetric(perOp/float64(full.Nanoseconds()), "ratio-to-full")
		})
	}
}

// TestOneChangeIsIncremental checks the property the benchmark measures, without timing: after one
// instance changes, exactly one service is prepared and rendered again.
func TestOneChangeIsIncremental(t *testing.T) {
	services := estate(300, 5)
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		tr := mustNew(t, benchOptions(mode))
		tr.Translate(services)
		in := slices.Clone(services)
		c := in[42].Clone()
		c.Instances[0].Weight = 1
		in[42] = c
		before := map[*registry.Service]uint64{}
		for s, e := range tr.entries {
			before[s] = e.gen
		}
		tr.Translate(in)
		rendered := 0
		for s, e := range tr.entries {
			if g, ok := before[s]; !ok || g != e.gen {
				rendered++
			}
		}
		if rendered != 1 {
			t.Errorf("%s: %d services rendered again, want 1", mode, rendered)
		}
	}
}
