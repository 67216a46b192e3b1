// Package refresh runs the loop of an adapter that reads its registry's full state periodically
// (Consul's catalog, Eureka's /apps), in the spirit of Prometheus' discovery/refresh: read every
// interval, send the state with Sink.Replace, and on a failure call Sink.Fail and retry with a
// capped exponential backoff, reset by the next success.
//
// A backoff that has grown must not delay noticing that the registry is back: given a Probe (a
// cheap request, such as a leader or health endpoint), the loop probes every ProbeInterval while
// failing and reads everything as soon as a probe succeeds.
package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mcp-bridge/mcp-bridge/internal/clock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Defaults of Options.
const (
	DefaultJitter         = 0.1
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultProbeInterval  = 2 * time.Second
)

// Options configure a Refresher. Zero values mean the defaults given on each field.
type Options struct {
	// Interval is the time between successful reads. Required.
	Interval time.Duration
	// Jitter lengthens each wait by up to this fraction of it, chosen at random, so bridges
	// started together do not read a registry in step. Default 0.1; negative means none.
	Jitter float64
	// InitialBackoff is the wait after the first failure; it doubles with each further failure
	// up to MaxBackoff. Defaults 1s and 1m.
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds one read (and one probe). Default: none beyond the context's.
	Timeout time.Duration
	// Probe, if set, is a cheap check that the registry answers, tried every ProbeInterval
	// (default 2s) while reads fail; a success triggers a read at once.
	Probe         func(ctx context.Context) error
	ProbeInterval time.Duration
	// Logger defaults to discarding; Clock to the system clock; Rand (in [0, 1)) to math/rand/v2.
	Logger *slog.Logger
	Clock  clock.Clock
	Rand   func() float64
}

func (o Options) withDefaults() (Options, error) {
	if o.Interval <= 0 {
		return o, fmt.Errorf("refresh: interval must be positive, got %s", o.Interval)
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	o.Jitter = min(max(o.Jitter, 0), 1)
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.InitialBackoff)
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o, nil
}

// Func reads the registry's full state.
type Func func(ctx context.Context) ([]*registry.Service, error)

// Status is what the loop knows, for an adapter's Describe. Times are zero until they happen.
type Status struct {
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	// Failures counts reads that failed in a row.
	Failures int       `json:"failures"`
	Next     time.Time `json:"next,omitzero"`
}

// Refresher runs one adapter's read loop.
type Refresher struct {
	opts Options
	read Func

	mu     sync.Mutex
	status Status
}

// New returns a Refresher that calls read.
func New(opts Options, read Func) (*Refresher, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if read == nil {
		return nil, errors.New("refresh: no read function")
	}
	return &Refresher{opts: o, read: read}, nil
}

// Status returns the loop's state.
func (r *Refresher) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run reads at once, then every Interval, and reports to sink until ctx is cancelled.
func (r *Refresher) Run(ctx context.Context, sink registry.Sink) error {
	o := r.opts
	next := o.Clock.Now() // the next read
	// trustProbe is false after a read a probe triggered failed, until the backoff's own read:
	// a registry that answers probes but fails reads (a permission error) must not be read at
	// every probe.
	trustProbe := true
	for {
		if !o.Clock.Now().Before(next) {
			next = r.readOnce(ctx, sink)
			if ctx.Err() != nil {
				return nil
			}
		}
		wait := next.Sub(o.Clock.Now())
		probing := trustProbe && o.Probe != nil && r.Status().Failures > 0 && wait > o.ProbeInterval
		if probing {
			wait = o.ProbeInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.Clock.After(wait):
		}
		if !probing {
			trustProbe = true
			continue
		}
		if err := r.call(ctx, o.Probe); err == nil {
			o.Logger.Info("registry answers again; reading it now")
			if next = r.readOnce(ctx, sink); ctx.Err() != nil {
				return nil
			}
			trustProbe = r.Status().Failures == 0
		}
	}
}

// readOnce reads the registry, reports the outcome and returns when to read next.
func (r *Refresher) readOnce(ctx context.Context, sink registry.Sink) time.Time {
	o := r.opts
	var services []*registry.Service
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		services, err = r.read(ctx)
		return err
	})
	if ctx.Err() != nil {
		return time.Time{}
	}
	now := o.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &r.status
	if err == nil {
		if st.Failures > 0 {
			o.Logger.Info("registry read again after failures", "failures", st.Failures, "services", len(services))
		}
		sink.Replace(services)
		st.LastSuccess, st.Failures, st.LastError = now, 0, ""
		st.Next = now.Add(r.jittered(o.Interval))
		return st.Next
	}
	msg := err.Error()
	if st.Failures == 0 || msg != st.LastError {
		// Once per failure, and again when the reason changes: not at every retry.
		o.Logger.Warn("registry cannot be read; its last-known services are held", "error", msg)
		sink.Fail(err)
	}
	st.Failures++
	st.LastFailure, st.LastError = now, msg
	st.Next = now.Add(r.jittered(backoff(o.InitialBackoff, o.MaxBackoff, st.Failures)))
	return st.Next
}

// call runs f, bounded by the per-call timeout if there is one.
func (r *Refresher) call(ctx context.Context, f func(context.Context) error) error {
	if r.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
	}
	return f(ctx)
}

func (r *Refresher) jittered(d time.Duration) time.Duration {
	return d + time.Duration(float64(d)*r.opts.Jitter*r.opts.Rand())
}

// backoff is the wait after the n-th failure in a row (n >= 1): initial doubled n-1 times, capped.
func backoff(initial, maxWait time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}
