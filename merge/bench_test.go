package merge

import (
	"fmt"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// bigState is n services of 10 instances each.
func bigState(n int) []*registry.Service {
	out := make([]*registry.Service, n)
	for i := range out {
		out[i] = svc(fmt.Sprintf("svc-%05d", i), addrs(i%250, 10)...)
	}
	return out
}

// BenchmarkReplaceResync measures a full resync of 10k services / 100k instances with the same
// content (the common periodic case): the sink call, under the lock, and the poll after it.
func BenchmarkReplaceResync(b *testing.B) {
	h := newHarness(b, Options{}, "r")
	h.sink("r").Replace(bigState(10000))
	h.mustFlush()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		state := bigState(10000)
		b.StartTimer()
		h.sink("r").Replace(state)
		h.flush()
	}
}

// BenchmarkUpsertOneOf10k measures one changed service among 10k: sink call plus snapshot.
func BenchmarkUpsertOneOf10k(b *testing.B) {
	h := newHarness(b, Options{}, "r")
	h.sink("r").Replace(bigState(10000))
	h.mustFlush()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.sink("r").Upsert([]*registry.Service{svc("svc-00042", addrs(1, 1+i%10)...)})
		if h.flush() == nil {
			b.Fatal("no snapshot")
		}
	}
}

// BenchmarkInitialSnapshot measures the first snapshot of 10k services / 100k instances.
func BenchmarkInitialSnapshot(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := newHarness(b, Options{}, "r")
		state := bigState(10000)
		b.StartTimer()
		h.sink("r").Replace(state)
		h.mustFlush()
	}
}

// BenchmarkLastKnown10k measures what the state saver takes from the merger per write at 10k
// services / 100k instances: one pointer copy per service, under the merger's lock.
func BenchmarkLastKnown10k(b *testing.B) {
	h := newHarness(b, Options{}, "r")
	h.sink("r").Replace(bigState(10000))
	h.mustFlush()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if lk := h.m.LastKnown(); len(lk[0].Services) != 10000 {
			b.Fatal(len(lk[0].Services))
		}
	}
}
