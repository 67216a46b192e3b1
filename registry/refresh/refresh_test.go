package refresh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/internal/fakeclock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// recorder is the registry (scripted reads and probes) and the sink, logging every call with
// its time since the start.
type recorder struct {
	clock *fakeclock.Clock
	start time.Time

	mu     sync.Mutex
	reads  []error // outcome of each read in turn; nil reads one service
	probes []error
	events []string
}

func (r *recorder) log(format string, a ...any) {
	r.events = append(r.events, fmt.Sprintf("%s ", r.clock.Now().Sub(r.start))+fmt.Sprintf(format, a...))
}

func (r *recorder) read(context.Context) ([]*registry.Service, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reads) == 0 {
		r.log("read beyond the script")
		return nil, errors.New("script ended")
	}
	err := r.reads[0]
	r.reads = r.reads[1:]
	r.log("read")
	return []*registry.Service{{Name: "s"}}, err
}

func (r *recorder) probe(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.probes) == 0 {
		r.log("probe beyond the script")
		return errors.New("script ended")
	}
	err := r.probes[0]
	r.probes = r.probes[1:]
	r.log("probe")
	return err
}

func (r *recorder) Replace(s []*registry.Service)  { r.log("replace %d", len(s)) }
func (r *recorder) Fail(err error)                 { r.log("fail %v", err) }
func (r *recorder) Upsert([]*registry.Service)     { r.log("upsert") }
func (r *recorder) Delete([]registry.Key)          { r.log("delete") }
func (r *recorder) Reject(string, string, error)   { r.log("reject") }
func (r *recorder) Accept(string)                  { r.log("accept") }
func (r *recorder) ReplaceRules([]*registry.Rule)  { r.log("replace-rules") }
func (r *recorder) UpsertRules([]*registry.Rule)   { r.log("upsert-rules") }
func (r *recorder) DeleteRules([]registry.RuleKey) { r.log("delete-rules") }

var (
	errDown  = errors.New("connection refused")
	errOther = errors.New("503 Service Unavailable")
)

// TestRun drives the loop with a fake clock: each step advances the clock to the next expected
// wake-up (checking that nothing wakes a millisecond earlier) and the events must match.
func TestRun(t *testing.T) {
	base := Options{Interval: 10 * time.Second, InitialBackoff: time.Second, MaxBackoff: 4 * time.Second, Jitter: -1}
	tests := []struct {
		name   string
		opts   Options
		probe  bool
		reads  []error
		probes []error
		wakes  []time.Duration // times after the start at which the loop wakes
		want   []string
	}{
		{
			name:  "reads every interval",
			opts:  base,
			reads: []error{nil, nil, nil},
			wakes: []time.Duration{10 * time.Second, 20 * time.Second},
			want:  []string{"0s read", "0s replace 1", "10s read", "10s replace 1", "20s read", "20s replace 1"},
		},
		{
			name:  "backoff doubles, is capped, and resets on success",
			opts:  base,
			reads: []error{nil, errDown, errDown, errDown, errDown, nil, errDown},
			wakes: []time.Duration{10 * time.Second, 11 * time.Second, 13 * time.Second, 17 * time.Second, 21 * time.Second, 31 * time.Second},
			want: []string{"0s read", "0s replace 1",
				"10s read", "10s fail connection refused", // reported once, not at every retry
				"11s read", "13s read", "17s read", // 1s, 2s, 4s (the cap)
				"21s read", "21s replace 1", // 4s again, then success
				"31s read", "31s fail connection refused"}, // a new failure after the reset: reported again
		},
		{
			name:  "a new reason is reported",
			opts:  base,
			reads: []error{errDown, errOther},
			wakes: []time.Duration{time.Second},
			want:  []string{"0s read", "0s fail connection refused", "1s read", "1s fail 503 Service Unavailable"},
		},
		{
			name:   "a probe notices the registry is back before the backoff ends",
			opts:   Options{Interval: 10 * time.Second, InitialBackoff: 30 * time.Second, ProbeInterval: 2 * time.Second, Jitter: -1},
			probe:  true,
			reads:  []error{errDown, nil, nil},
			probes: []error{errDown, nil},
			wakes:  []time.Duration{2 * time.Second, 4 * time.Second, 14 * time.Second},
			want: []string{"0s read", "0s fail connection refused", "2s probe", "4s probe", "4s read", "4s replace 1",
				"14s read", "14s replace 1"}, // no probes while reads succeed
		},
		{
			name:   "a probe that succeeds while reads fail is not trusted until the backoff's read",
			opts:   Options{Interval: 10 * time.Second, InitialBackoff: 3 * time.Second, ProbeInterval: 2 * time.Second, Jitter: -1},
			probe:  true,
			reads:  []error{errDown, errOther, nil},
			probes: []error{nil},
			wakes:  []time.Duration{2 * time.Second, 8 * time.Second},
			want: []string{"0s read", "0s fail connection refused", "2s probe", "2s read", "2s fail 503 Service Unavailable",
				"8s read", "8s replace 1"}, // 2s + 6s of backoff, no probe in between
		},
		{
			name:  "jitter lengthens the wait by a random part of it",
			opts:  Options{Interval: 10 * time.Second, Jitter: 0.2, Rand: func() float64 { return 0.5 }},
			reads: []error{nil, nil},
			wakes: []time.Duration{11 * time.Second},
			want:  []string{"0s read", "0s replace 1", "11s read", "11s replace 1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New()
			rec := &recorder{clock: clk, start: clk.Now(), reads: tc.reads, probes: tc.probes}
			opts := tc.opts
			opts.Clock = clk
			if tc.probe {
				opts.Probe = rec.probe
			}
			r, err := New(opts, rec.read)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, rec) }()
			waitSleeping(t, clk)
			for _, at := range tc.wakes {
				early := clk.Now().Sub(rec.start)
				clk.Advance(at - early - time.Millisecond)
				if clk.Pending() != 1 {
					t.Fatalf("the loop woke before %s", at)
				}
				clk.Advance(time.Millisecond)
				waitSleeping(t, clk)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v", err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if !slices.Equal(rec.events, tc.want) {
				t.Errorf("events:\n got %q\nwant %q", rec.events, tc.want)
			}
		})
	}
}

// waitSleeping waits until the loop is waiting on the clock.
func waitSleeping(t *testing.T, clk *fakeclock.Clock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStatus(t *testing.T) {
	clk := fakeclock.New()
	rec := &recorder{clock: clk, start: clk.Now(), reads: []error{errDown}}
	r, err := New(Options{Interval: time.Minute, InitialBackoff: 5 * time.Second, Jitter: -1, Clock: clk}, rec.read)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx, rec) }()
	waitSleeping(t, clk)
	st := r.Status()
	if st.Failures != 1 || st.LastError != errDown.Error() || !st.LastFailure.Equal(rec.start) || !st.Next.Equal(rec.start.Add(5*time.Second)) || !st.LastSuccess.IsZero() {
		t.Errorf("status after one failure = %+v", st)
	}
}

func TestNewRejects(t *testing.T) {
	read := func(context.Context) ([]*registry.Service, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		opts Options
		read Func
	}{
		{"no interval", Options{}, read},
		{"negative interval", Options{Interval: -time.Second}, read},
		{"no read function", Options{Interval: time.Second}, nil},
	} {
		if _, err := New(tc.opts, tc.read); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// A read that hangs is cut by Timeout and counts as a failure.
func TestTimeout(t *testing.T) {
	failed := make(chan error, 1)
	r, err := New(Options{Interval: time.Hour, Timeout: 10 * time.Millisecond}, func(ctx context.Context) ([]*registry.Service, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx, failSink{failed}) }()
	select {
	case err := <-failed:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Fail(%v), want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a hanging read was never reported")
	}
}

type failSink struct{ failed chan error }

func (s failSink) Fail(err error)               { s.failed <- err }
func (failSink) Replace([]*registry.Service)    {}
func (failSink) Upsert([]*registry.Service)     {}
func (failSink) Delete([]registry.Key)          {}
func (failSink) Reject(string, string, error)   {}
func (failSink) Accept(string)                  {}
func (failSink) ReplaceRules([]*registry.Rule)  {}
func (failSink) UpsertRules([]*registry.Rule)   {}
func (failSink) DeleteRules([]registry.RuleKey) {}
