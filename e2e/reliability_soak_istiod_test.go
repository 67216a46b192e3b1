package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// The churn soak's Istiod side: a real Istiod fed by the bridge only, a sidecar view of it, and
// Istiod's memory sampled through the churn.

// istiodSample is one reading of Istiod's memory, at a time relative to the churn's start.
type istiodSample struct {
	at   time.Duration
	rss  int64
	heap int64 // live Go heap as of Istiod's last GC: go_memstats_next_gc_bytes / 2 (GOGC 100)
}

// istiodSampler reads Istiod's RSS and live heap every interval until stopped.
type istiodSampler struct {
	mu      sync.Mutex
	samples []istiodSample
	stop    func()
}

func sampleIstiod(i *servers.Istiod, from time.Time, every time.Duration) *istiodSampler {
	s := &istiodSampler{}
	s.stop = soakEvery(every, func() {
		rss, heap, _, err := istiodMemory(i)
		if err != nil {
			return // a missed sample is no finding; the after-sync and after-churn reads are checked
		}
		s.mu.Lock()
		s.samples = append(s.samples, istiodSample{at: time.Since(from), rss: rss, heap: heap})
		s.mu.Unlock()
	})
	return s
}

// istiodMemory reads Istiod's RSS, live heap (as of its last GC) and the EDS pushes it has made.
func istiodMemory(i *servers.Istiod) (rss, heap int64, edsPushes float64, err error) {
	if rss, err = i.RSS(); err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := i.Metrics(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("reading Istiod's metrics: %w", err)
	}
	heap = int64(metricSum(m, "go_memstats_next_gc_bytes", nil) / 2)
	if heap == 0 {
		return 0, 0, 0, fmt.Errorf("istiod's /metrics has no go_memstats_next_gc_bytes")
	}
	return rss, heap, metricSum(m, "pilot_xds_pushes", map[string]string{"type": "eds"}), nil
}

// istiodThirds is the peak RSS and live heap Istiod showed in each third of the churn.
type istiodThirds struct {
	rss, heap [3]int64
	n         [3]int // samples per third
}

// thirds splits samples by the third of the churn (of length churn) they were taken in; samples
// after the churn ended count in the last third.
func thirds(samples []istiodSample, churn time.Duration) istiodThirds {
	var th istiodThirds
	for _, s := range samples {
		k := min(int(3*s.at/churn), 2)
		if k < 0 {
			continue
		}
		th.rss[k], th.heap[k] = max(th.rss[k], s.rss), max(th.heap[k], s.heap)
		th.n[k]++
	}
	return th
}

// flatErr checks "Istiod's memory flat under churn": the peak of the last third of the churn
// within growth x the peak of the first third, for RSS and for the live heap. growth <= 0 turns
// the check off (it is then only reported).
func (th istiodThirds) flatErr(growth float64) error {
	for k, n := range th.n {
		if n == 0 {
			return fmt.Errorf("no sample of Istiod's memory in third %d of the churn", k+1)
		}
	}
	if growth <= 0 {
		return nil
	}
	for _, m := range []struct {
		what string
		v    [3]int64
	}{{"RSS", th.rss}, {"live heap", th.heap}} {
		if float64(m.v[2]) > growth*float64(m.v[0]) {
			return fmt.Errorf("istiod's %s peaked at %.1f MiB in the last third of the churn, more than %.2fx its %.1f MiB peak in the first third: it keeps growing",
				m.what, mib(m.v[2]), growth, mib(m.v[0]))
		}
	}
	return nil
}

// soakCluster is the outbound cluster of interface i at the sidecar.
func soakCluster(i int) string { return outboundCluster(soakHost(i), zkDubboPort, "") }

// soakEndpoint is a provider's endpoint address at the sidecar.
func soakEndpoint(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(zkDubboPort)) }

// soakSidecarShows reports whether the sidecar's EDS of interface i has an endpoint at ip.
func soakSidecarShows(s *xdsview.Snapshot, i int, ip string) bool {
	want := soakEndpoint(ip)
	return slices.ContainsFunc(s.Endpoints[soakCluster(i)], func(e xdsview.Endpoint) bool { return e.Address == want })
}

// soakSidecarMatches compares every interface's EDS at the sidecar with want (interface ->
// sorted provider IPs, as ZooKeeper lists them).
func soakSidecarMatches(s *xdsview.Snapshot, want [][]string) error {
	for i, ips := range want {
		eps := make([]string, 0, len(ips))
		for _, ip := range ips {
			eps = append(eps, soakEndpoint(ip))
		}
		slices.Sort(eps)
		if err := xdsview.EndpointsEqual(s, soakCluster(i), eps); err != nil {
			return fmt.Errorf("the sidecar's EDS of %s: %w", soakHost(i), err)
		}
	}
	return nil
}

// soakStartIstiod starts a private Istiod on the shared cluster, fed by the bridge alone
// (Istio's default debounce), and a sidecar view of it.
func soakStartIstiod(t *testing.T, b *servers.Bridge) (*servers.Istiod, *xdsview.View) {
	t.Helper()
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}, ReadyTimeout: 3 * time.Minute})
	return cp.Istiod, xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
}

// soakWaitIstiodGC waits for Istiod's next GC (forced every 2 minutes at the latest).
func soakWaitIstiodGC(t *testing.T, i *servers.Istiod, what string) {
	t.Helper()
	from := float64(time.Now().Unix())
	servers.WaitFor(t, 150*time.Second, "an Istiod GC "+what+" (Go forces one every 2 minutes)", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := i.Metrics(ctx)
		if err != nil {
			return err
		}
		if at := metricSum(m, "go_memstats_last_gc_time_seconds", nil); at < from {
			return fmt.Errorf("the last GC was %.0f s before", from-at)
		}
		return nil
	})
}

// TestSoakFigures checks the soak's arithmetic on known inputs (no servers): the lag
// percentiles (the soak once passed fractions to percentile, which takes percents, and reported
// its 0.5th and 0.99th percentiles as p50 and p99) and the split of Istiod's samples into thirds
// with the flat check.
func TestSoakFigures(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	t.Run("lag", func(t *testing.T) {
		for _, tc := range []struct {
			name            string
			lags            []time.Duration
			p50, p99, worst time.Duration
		}{
			{"none", nil, 0, 0, 0},
			{"one", []time.Duration{ms(7)}, ms(7), ms(7), ms(7)},
			{"1 to 1000 ms, shuffled", func() []time.Duration {
				var l []time.Duration
				for n := 1000; n >= 1; n-- {
					l = append(l, ms(n))
				}
				return l
			}(), ms(500), ms(990), ms(1000)},
		} {
			p50, p99, worst := soakLagStats(tc.lags)
			if p50 != tc.p50 || p99 != tc.p99 || worst != tc.worst {
				t.Errorf("%s: p50 %v p99 %v max %v, want %v %v %v", tc.name, p50, p99, worst, tc.p50, tc.p99, tc.worst)
			}
		}
	})
	t.Run("istiod flat", func(t *testing.T) {
		const churn = 30 * time.Second
		samples := func(rss ...int64) []istiodSample {
			var out []istiodSample
			for n, r := range rss { // one sample per 10 s: one per third, the last after the churn
				out = append(out, istiodSample{at: time.Duration(n)*10*time.Second + time.Second, rss: r << 20, heap: r << 19})
			}
			return out
		}
		for _, tc := range []struct {
			name    string
			samples []istiodSample
			growth  float64
			wantErr string
		}{
			{"flat", samples(100, 120, 110), 1.5, ""},
			{"grows", samples(100, 150, 200), 1.5, "RSS peaked at 200.0 MiB in the last third"},
			{"grows after the churn", samples(100, 100, 100, 160), 1.5, "RSS peaked at 160.0 MiB"},
			{"not asserted", samples(100, 150, 200), 0, ""},
			{"a third without a sample", samples(100, 100), 1.5, "no sample of Istiod's memory in third 3"},
		} {
			err := thirds(tc.samples, churn).flatErr(tc.growth)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.wantErr)
			}
		}
	})
}
