package mcp

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestClientAckLag: a client that ACKs shows lag 0 and its replies in the ACK-duration
// histogram; one that never ACKs shows a lag growing from when it fell behind, and a new
// version does not reset it (it is still behind, since longer than that version exists).
func TestClientAckLag(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	acking := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	acking.next(5 * time.Second)
	silent := startAdsc(t, srv.addr, []string{seV1}, adscOptions{noAck: true})
	silent.next(5 * time.Second)
	testkit.WaitUntil(t, 5*time.Second, "the ACKing client in sync", func() bool {
		lag, ok := ackLags(t, srv)["sotw-1"]
		return ok && lag == 0
	})
	time.Sleep(300 * time.Millisecond) // the quantity measured is the silent client's waiting time
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 1)}})
	acking.next(5 * time.Second)
	testkit.WaitUntil(t, 5*time.Second, "the ACKing client in sync with the new version", func() bool {
		return ackLags(t, srv)["sotw-1"] == 0
	})
	lags := ackLags(t, srv)
	if lag := lags["sotw-2"]; lag < 0.3 || lag > 60 {
		t.Errorf("silent client's ACK lag %v s, want >= 0.3 s (it has been behind since it connected): all %v", lag, lags)
	}
	h := &dto.Metric{}
	if err := srv.m.ackDuration.WithLabelValues(istio.CollectionServiceEntry).(prometheus.Metric).Write(h); err != nil {
		t.Fatal(err)
	}
	if n := h.GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("mcp_bridge_mcp_ack_duration_seconds count %d, want 2 (the ACKing client's two replies)", n)
	}
}

// ackLags returns mcp_bridge_mcp_client_ack_lag_seconds by client id, as scraped.
func ackLags(t testing.TB, srv *testServer) map[string]float64 {
	t.Helper()
	fams, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "mcp_bridge_mcp_client_ack_lag_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
