package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// manyServices is n Dubbo 2 interfaces with perService providers each, labelled as the
// ZooKeeper adapter labels them from a Dubbo 2.7 provider URL (the parameters minus the volatile
// timestamp and pid), plus one label unique to each instance (as a Kubernetes pod name or a
// metadata revision is), so compression is not flattered: the realistic worst case for size,
// since every instance carries its own copy of the metadata.
func manyServices(n, perService int) []*registry.Service {
	out := make([]*registry.Service, n)
	for i := range out {
		iface := fmt.Sprintf("com.example.team%03d.Service%05d", i%100, i)
		svc := &registry.Service{
			Kind: registry.KindDubboInterface, Name: iface, Version: "1.0.0",
			Ports:  []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}},
			Labels: map[string]string{"interface": iface, "version": "1.0.0"},
		}
		for j := 0; j < perService; j++ {
			addr := fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j+1)
			svc.Instances = append(svc.Instances, registry.Instance{
				ID: addr + ":20880", Address: addr, Ports: map[string]uint32{"dubbo": 20880},
				Weight: 100, Healthy: true, Enabled: true,
				Locality: registry.Locality{Region: "cn-east", Zone: fmt.Sprintf("cn-east-%d", j%3+1)},
				Labels: map[string]string{
					"anyhost": "true", "application": fmt.Sprintf("team%03d-provider", i%100), "deprecated": "false",
					"dubbo": "2.0.2", "dynamic": "true", "generic": "false", "interface": iface,
					"methods": "create,get,list,update,delete", "release": "2.7.23", "side": "provider",
					"version": "1.0.0", "category": "providers", "protocol": "dubbo", "path": iface,
					"pod": fmt.Sprintf("team%03d-provider-%08x-%05x", i%100, uint32(i*2654435761), uint32(j*40503+i)),
				},
			})
		}
		out[i] = svc
	}
	return out
}

// BenchmarkWrite10k saves 10k services / 100k instances: what one write costs at that scale.
// go test ./state -run '^$' -bench Write10k -benchtime 5x
func BenchmarkWrite10k(b *testing.B) {
	regs := []Registry{{Name: "zk", Type: "zookeeper", Services: manyServices(10000, 10)}}
	path := filepath.Join(b.TempDir(), "state.json.gz")
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if size, err = write(path, regs, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "file-bytes")
	b.ReportMetric(float64(rawSize(b, regs)), "json-bytes")
}

// BenchmarkLoad10k reads the same file back: what a restart pays before it can restore.
func BenchmarkLoad10k(b *testing.B) {
	regs := []Registry{{Name: "zk", Type: "zookeeper", Services: manyServices(10000, 10)}}
	path := filepath.Join(b.TempDir(), "state.json.gz")
	if _, err := write(path, regs, time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		saved, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(saved.Registries[0].Services); n != 10000 {
			b.Fatalf("%d services", n)
		}
	}
}

// rawSize is the uncompressed JSON size, for comparison.
func rawSize(tb testing.TB, regs []Registry) int64 {
	f, err := os.CreateTemp(tb.TempDir(), "raw")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cw := &countingWriter{w: f}
	if err := encode(cw, regs, time.Now()); err != nil {
		tb.Fatal(err)
	}
	return cw.n
}
