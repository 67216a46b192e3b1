package mcp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// istiodMetricsStub serves DigestMetric with a value the test sets. It stands in for Istiod's
// monitoring port because the test must decide when "Istiod has digested" happens, which a real
// Istiod cannot be made to do on cue; the e2e pacing test runs the real one.
type istiodMetricsStub struct {
	pushContexts atomic.Int64
	down         atomic.Bool
	reads        atomic.Int64
	*httptest.Server
}

func newIstiodMetricsStub(t *testing.T) *istiodMetricsStub {
	st := &istiodMetricsStub{}
	st.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.reads.Add(1)
		if st.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "# TYPE pilot_pushcontext_init_seconds histogram\n"+
			"pilot_pushcontext_init_seconds_bucket{le=\"+Inf\"} %d\npilot_pushcontext_init_seconds_sum 0.5\n"+
			"%s %d\npilot_xds_pushes{type=\"eds\"} 7\n", st.pushContexts.Load(), DigestMetric, st.pushContexts.Load())
	}))
	t.Cleanup(st.Close)
	return st
}

func seVersion(gen int) map[string][]*Resource {
	return map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, gen)}}
}

// TestDigestPacing is issue 15's Istiod-paced pushes at the stream level: after the client ACKs
// a push, newer versions wait until Istiod's push-context count moves past its value at the ACK;
// the versions set meanwhile are coalesced into one push, timed from the oldest change; the wait
// shows on /debug/clients and in metrics.
func TestDigestPacing(t *testing.T) {
	t.Parallel()
	stub := newIstiodMetricsStub(t)
	srv := startServer(t, Options{Pacing: Pacing{Mode: PacingDigest, MetricsURL: stub.URL + "/metrics", Interval: 5 * time.Millisecond, MaxWait: time.Minute}}, nil)
	srv.Set(seVersion(0))
	cl := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	cl.next(5 * time.Second) // the answer to the request: no digest wait after its ACK
	changed := time.Now()
	srv.SetAt(seVersion(1), changed)
	cl.next(5 * time.Second) // a push: its ACK starts a digest wait
	testkit.WaitUntil(t, 5*time.Second, "the stream waiting for the digest signal", func() bool {
		return srv.Clients()[0].Pacing.WaitingForDigest
	})
	srv.SetAt(seVersion(2), time.Now())
	srv.SetAt(seVersion(3), time.Now())
	cl.expectNone(300 * time.Millisecond)
	if p := srv.Clients()[0].Pacing; p.Signal != "digest" || !p.WaitingForDigest {
		t.Fatalf("pacing %+v; want waiting for the digest signal", p)
	}
	stub.pushContexts.Add(1) // Istiod built a push context: it has digested version 1
	resp := cl.next(5 * time.Second)
	if want := srv.snapshotFor(istio.CollectionServiceEntry).version; resp.GetVersionInfo() != want {
		t.Errorf("after the digest: version %s, want the latest %s (2 and 3 coalesced)", resp.GetVersionInfo(), want)
	}
	cs := srv.Clients()[0]
	if cs.Pacing.Waits != 1 || cs.Pacing.Timeouts != 0 || cs.Pacing.LastWaitSeconds < 0.3 {
		t.Errorf("pacing %+v; want one digest wait of >= 0.3 s", cs.Pacing)
	}
	if ty := cs.Types[0]; ty.PushesCoalesced != 1 || ty.LastChangeToSendSeconds < 0.3 {
		t.Errorf("type %+v; want 1 push coalesced and change->send >= 0.3 s (timed from version 2's change)", ty)
	}
	if n := histogramCount(t, srv, "mcp_bridge_change_to_send_seconds"); n != 2 {
		t.Errorf("change_to_send observations %d, want 2 (two pushes)", n)
	}
	if got := gathered(t, srv, "mcp_bridge_mcp_client_pushes_coalesced"); got != 1 {
		t.Errorf("mcp_bridge_mcp_client_pushes_coalesced %v, want 1", got)
	}
}

// TestDigestPacingFallsBackToAck: when Istiod's metrics cannot be read the stream paces by ACKs
// only (nothing is held longer than a failed read), says so, and counts the failure.
func TestDigestPacingFallsBackToAck(t *testing.T) {
	t.Parallel()
	stub := newIstiodMetricsStub(t)
	stub.down.Store(true)
	srv := startServer(t, Options{Pacing: Pacing{Mode: PacingDigest, MetricsURL: stub.URL + "/metrics", Interval: 5 * time.Millisecond, MaxWait: time.Minute}}, nil)
	srv.Set(seVersion(0))
	cl := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	cl.next(5 * time.Second)
	for gen := 1; gen <= 3; gen++ {
		srv.Set(seVersion(gen))
		start := time.Now()
		cl.next(5 * time.Second)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("version %d took %v with the signal down; want ACK pacing", gen, d)
		}
	}
	cs := srv.Clients()[0]
	if cs.Pacing.Signal != "ack" || cs.Pacing.Failures != 1 {
		t.Errorf("pacing %+v; want signal ack after one failed read (retried after a minute)", cs.Pacing)
	}
}

// TestDigestPacingMaxWait: a signal that never moves holds a newer version for maxWait at most.
func TestDigestPacingMaxWait(t *testing.T) {
	t.Parallel()
	stub := newIstiodMetricsStub(t)
	const maxWait = 400 * time.Millisecond
	srv := startServer(t, Options{Pacing: Pacing{Mode: PacingDigest, MetricsURL: stub.URL + "/metrics", Interval: 5 * time.Millisecond, MaxWait: maxWait}}, nil)
	srv.Set(seVersion(0))
	cl := startAdsc(t, srv.addr, []string{seV1}, adscOptions{})
	cl.next(5 * time.Second)
	srv.Set(seVersion(1))
	cl.next(5 * time.Second)
	testkit.WaitUntil(t, 5*time.Second, "waiting", func() bool { return srv.Clients()[0].Pacing.WaitingForDigest })
	start := time.Now()
	srv.Set(seVersion(2))
	cl.next(10 * time.Second)
	if d := time.Since(start); d < maxWait/2 || d > maxWait+3*time.Second {
		t.Errorf("held %v; want about maxWait %v", d, maxWait)
	}
	if p := srv.Clients()[0].Pacing; p.Timeouts != 1 {
		t.Errorf("pacing %+v; want one timeout", p)
	}
}

func TestParseDigestMetric(t *testing.T) {
	cases := []struct {
		name, text string
		want       float64
		err        string
	}{
		{"plain", DigestMetric + " 12\n", 12, ""},
		{"with labels and timestamp", DigestMetric + "{revision=\"1-30\"} 3 1700000000\n" + DigestMetric + "{revision=\"b\"} 4\n", 7, ""},
		{"longer name ignored", DigestMetric + "_total 9\n" + DigestMetric + " 1\n", 1, ""},
		{"missing", "pilot_xds_pushes 3\n", 0, "have no " + DigestMetric},
		{"bad value", DigestMetric + " x\n", 0, "has value \"x\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDigestMetric(strings.NewReader(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func FuzzParseDigestMetric(f *testing.F) {
	f.Add(DigestMetric + " 12\n")
	f.Add(DigestMetric + "{a=\"}\"} 1e3 5\n")
	f.Add("# HELP x\n" + DigestMetric + "\n")
	f.Fuzz(func(t *testing.T, text string) {
		v, err := parseDigestMetric(strings.NewReader(text))
		if err == nil && !strings.Contains(text, DigestMetric) {
			t.Fatalf("value %v from text without the metric", v)
		}
	})
}

func TestPacingValidate(t *testing.T) {
	cases := []struct {
		p    Pacing
		want string
	}{
		{Pacing{}, ""},
		{Pacing{Mode: "fast"}, `mode: "fast" is not digest or ack`},
		{Pacing{MetricsPort: 70000}, "metricsPort: 70000"},
		{Pacing{MetricsURL: "istiod:15014"}, "metricsURL"},
		{Pacing{MaxWait: -time.Second}, "maxWait"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: err %v, want %q", c.p, err, c.want)
		}
	}
}

func histogramCount(t *testing.T, srv *testServer, name string) uint64 {
	t.Helper()
	fams, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func gathered(t *testing.T, srv *testServer, name string) float64 {
	t.Helper()
	fams, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}
