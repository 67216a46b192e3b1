// Package eureka watches a Eureka server (or cluster) the way Netflix's own client does: one
// full fetch of /apps, then /apps/delta every interval, applying ADDED / MODIFIED / DELETED by
// instance id and checking the result against the server's apps__hashcode; a mismatch, or a
// server without a delta, falls back to a full fetch. At rest an interval costs one small delta
// answer, not the whole registry.
//
// The loop is registry/refresh's (interval, capped backoff, early probe while failing): each
// read returns the whole state, which refresh sends with Sink.Replace. Services of unchanged
// applications keep their pointers, so merge's comparison of a Replace is cheap and nothing
// downstream recomputes them.
package eureka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/refresh"
)

// Adapter watches one Eureka cluster.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	client  *client
	conv    *converter
	metrics *metrics
	loop    *refresh.Refresher

	// Owned by the read loop (refresh calls read serially).
	st       *state
	needFull bool
	sink     registry.Sink
	rejected map[string]rejection
	warned   map[string]string // port warnings last logged, by service name

	mu     sync.Mutex
	status status
}

// status is what Describe shows beside the refresh loop's own status.
type status struct {
	LastFullFetch  time.Time `json:"lastFullFetch,omitzero"`
	LastDelta      time.Time `json:"lastDelta,omitzero"`
	FullFetches    int       `json:"fullFetches"`
	Deltas         int       `json:"deltas"`
	HashMismatches int       `json:"hashMismatches"`
	// LastDeltaSize is the number of instances the last delta listed.
	LastDeltaSize    int    `json:"lastDeltaSize"`
	LastHashMismatch string `json:"lastHashMismatch,omitempty"`
	Apps             int    `json:"apps"`
	Instances        int    `json:"instances"`
	HashCode         string `json:"hashCode"`
	// PortWarnings names, by service, ports left out because only some instances enable them.
	// Replaced, never modified, so Describe may hand it out.
	PortWarnings map[string]string `json:"portWarnings,omitempty"`
}

// New builds an adapter from a defaulted, valid configuration. It connects nothing.
func New(cfg Config, opts registry.Options) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eureka: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := newClient(cfg, cfg.Password.Read)
	if err != nil {
		return nil, fmt.Errorf("eureka: %w", err)
	}
	a := &Adapter{cfg: cfg, log: log, client: cl, conv: newConverter(cfg), rejected: map[string]rejection{}}
	if opts.Metrics != nil {
		if a.metrics, err = newMetrics(opts.Metrics); err != nil {
			return nil, fmt.Errorf("eureka: registering metrics: %w", err)
		}
	}
	a.loop, err = refresh.New(refresh.Options{
		Interval: cfg.Interval,
		// A read is at most a delta and a full fetch, each tried on every server in turn, each
		// request bounded by timeout (the HTTP client's). The loop's own bound says so, so a read
		// can never outlast it whatever the transport does (a hung server is failed within it).
		Timeout: 2 * time.Duration(len(cfg.Servers)) * cfg.Timeout,
		Probe:   cl.probe,
		Logger:  log,
	}, a.read)
	if err != nil {
		return nil, fmt.Errorf("eureka: %w", err)
	}
	return a, nil
}

// Run fetches and reports to sink until ctx is cancelled.
func (a *Adapter) Run(ctx context.Context, sink registry.Sink) error {
	a.sink = sink
	return a.loop.Run(ctx, sink)
}

// read brings the state up to date (a delta, or everything when there is no state yet, the
// last delta did not add up, or the server has no delta) and returns every service.
func (a *Adapter) read(ctx context.Context) ([]*registry.Service, error) {
	if a.st == nil || a.needFull {
		if err := a.fullFetch(ctx); err != nil {
			return nil, err
		}
	} else if ok, err := a.delta(ctx); err != nil {
		return nil, err
	} else if !ok {
		if err := a.fullFetch(ctx); err != nil {
			return nil, err
		}
	}
	services, rejected := a.conv.convert(a.st)
	a.report(rejected)
	a.warn(a.conv.warnings())
	a.mu.Lock()
	a.status.Apps, a.status.Instances, a.status.HashCode = len(a.st.apps), a.st.instances(), a.st.hash()
	a.mu.Unlock()
	a.metrics.setInstances(a.st.instances())
	return services, nil
}

func (a *Adapter) fullFetch(ctx context.Context) error {
	before := a.client.fetched()
	full, err := a.client.get(ctx, "/apps")
	a.metrics.fetched("full", err, a.client.fetched()-before)
	if err != nil {
		return err
	}
	if full.Missing {
		return fmt.Errorf("server %s answered /apps without an applications element", a.client.server())
	}
	if a.st == nil {
		a.st = newState()
	}
	a.st.replaceAll(full)
	a.needFull = false
	if h := a.st.hash(); full.HashCode != "" && full.HashCode != h {
		// Not an error: a server's own answer is the truth; say so once, for the curious.
		a.log.Debug("full fetch hash code differs from the server's", "server", full.HashCode, "computed", h)
	}
	a.mu.Lock()
	a.status.LastFullFetch = time.Now()
	a.status.FullFetches++
	a.mu.Unlock()
	return nil
}

// delta applies /apps/delta and reports whether the result matches the server's hash code.
func (a *Adapter) delta(ctx context.Context) (bool, error) {
	before := a.client.fetched()
	d, err := a.client.get(ctx, "/apps/delta")
	a.metrics.fetched("delta", err, a.client.fetched()-before)
	if err != nil {
		return false, err
	}
	size := 0
	for _, ap := range d.Apps {
		size += len(ap.Instances)
	}
	a.mu.Lock()
	a.status.LastDelta = time.Now()
	a.status.Deltas++
	a.status.LastDeltaSize = size
	a.mu.Unlock()
	if d.Missing {
		a.log.Info("server has no delta; fetching everything", "server", a.client.server())
		return false, nil
	}
	changed := a.st.applyDelta(d)
	if got := a.st.hash(); got != d.HashCode {
		// Netflix's client does the same: the delta missed something (a deletion it never
		// listed, a change older than the server's delta window), so the state is not trusted.
		a.needFull = true
		msg := fmt.Sprintf("server %q, computed %q after %d changes", d.HashCode, got, changed)
		a.log.Info("delta does not add up to the server's hash code; fetching everything", "server", a.client.server(), "hash", msg)
		a.metrics.mismatch()
		a.mu.Lock()
		a.status.HashMismatches++
		a.status.LastHashMismatch = time.Now().UTC().Format(time.RFC3339) + ": " + msg
		a.mu.Unlock()
		return false, nil
	}
	return true, nil
}

// report sends rejections that are new or changed and withdraws those that went away.
func (a *Adapter) report(now map[string]rejection) {
	for w, r := range now {
		if old, ok := a.rejected[w]; ok && old.reason == r.reason && old.err.Error() == r.err.Error() {
			continue
		}
		a.sink.Reject(w, r.reason, r.err)
		a.metrics.reject(r.reason)
	}
	for w := range a.rejected {
		if _, ok := now[w]; !ok {
			a.sink.Accept(w)
		}
	}
	a.rejected = now
}

// warn logs port warnings that are new or changed (once, not every interval) and shows them all.
func (a *Adapter) warn(now map[string]string) {
	for name, w := range now {
		if a.warned[name] != w {
			a.log.Warn("ports left out of a service", "service", name, "reason", w)
		}
	}
	a.warned = now
	a.mu.Lock()
	a.status.PortWarnings = now
	a.mu.Unlock()
}

// Describe is the adapter's part of /debug/registries. Never credentials: the password's source only.
func (a *Adapter) Describe() map[string]any {
	a.mu.Lock()
	st := a.status
	a.mu.Unlock()
	auth := map[string]any{}
	if a.cfg.Username != "" {
		auth["username"] = a.cfg.Username
		auth["password"] = a.cfg.Password.String()
	}
	return map[string]any{
		"servers":      a.cfg.Servers,
		"serverInUse":  a.client.server(),
		"interval":     a.cfg.Interval.String(),
		"identity":     a.cfg.Identity,
		"statuses":     a.cfg.Statuses,
		"auth":         auth,
		"bytesFetched": a.client.fetched(),
		"sync":         st,
		"loop":         a.loop.Status(),
	}
}
