package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/internal/clock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Source is what a Store saves: in the bridge, the merge layer, through cmd/mcp-bridge's wiring
// (which adds each registry's configured type).
type Source interface {
	// Changes receives, coalesced, after Revision changed.
	Changes() <-chan struct{}
	// Revision is cheap: revision changes whenever the state to save changed, and synced counts
	// the registries that have completed their first full sync in this run.
	Revision() (revision uint64, synced int)
	// Collect returns the state to save: only registries whose state is known. It is called once
	// per write; the services are only read.
	Collect() []Registry
}

// Options are what New needs besides the configuration.
type Options struct {
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Metrics is where the store registers its collectors; nil registers nothing.
	Metrics prometheus.Registerer
	// Clock defaults to the system clock; tests inject a fake one.
	Clock clock.Clock
}

// Ref names a configured registry: saved state is restored to the registry with the same name
// and type only.
type Ref struct {
	Name, Type string
}

// Store is one state file: Restore reads it at start, Run keeps it up to date.
type Store struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	met   *metrics

	mu     sync.Mutex
	status Status
}

// Status is the state file as /debug/registries shows it.
type Status struct {
	File     string `json:"file"`
	Interval string `json:"interval"`
	// Load is what happened to the file found at start.
	Load LoadStatus `json:"load"`
	// Writes and WriteErrors count write attempts in this run.
	Writes      uint64 `json:"writes"`
	WriteErrors uint64 `json:"writeErrors"`
	// LastWrite is when the file was last written; LastWriteBytes its size then.
	LastWrite         time.Time `json:"lastWrite,omitzero"`
	LastWriteBytes    int64     `json:"lastWriteBytes,omitempty"`
	LastWriteDuration string    `json:"lastWriteDuration,omitempty"`
	// LastError is the last failed write's error, cleared by a successful write.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
}

// LoadStatus says what the state file found at start gave.
type LoadStatus struct {
	// Result is "restored" (the file was read; Restored lists what it gave), "no-file" (none
	// yet: a first start, or the file was never written) or "ignored" (the file is unusable;
	// Error says why, and it is replaced at the next write).
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Written is when the file was written.
	Written  time.Time          `json:"written,omitzero"`
	Restored []RestoredRegistry `json:"restored,omitempty"`
	// Skipped are registries in the file that no configured registry matches (by name and type).
	Skipped []SkippedRegistry `json:"skipped,omitempty"`
	// Missing are configured registries the file does not hold (new ones, or never read before).
	Missing []string `json:"missing,omitempty"`
}

// RestoredRegistry is a registry whose saved services were restored.
type RestoredRegistry struct {
	Name      string `json:"name"`
	Services  int    `json:"services"`
	Instances int    `json:"instances"`
	Rules     int    `json:"rules,omitempty"`
}

// SkippedRegistry is a registry in the file that no configured registry matches.
type SkippedRegistry struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Load results.
const (
	LoadRestored = "restored"
	LoadNoFile   = "no-file"
	LoadIgnored  = "ignored"
)

// New returns a Store for cfg, which must have a File. It touches no file: Restore and Run do.
func New(cfg Config, opts Options) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if !cfg.Enabled() {
		return nil, errors.New("state: no file configured")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	s := &Store{
		cfg: cfg, log: opts.Logger, clock: opts.Clock, met: newMetrics(),
		status: Status{File: cfg.File, Interval: cfg.Interval.String()},
	}
	if opts.Metrics != nil {
		if err := s.met.register(opts.Metrics); err != nil {
			return nil, fmt.Errorf("state: registering metrics: %w", err)
		}
	}
	return s, nil
}

// Restore is RestoreAll for services only: saved governance rules are not restored.
func (s *Store) Restore(configured []Ref, restore func(name string, services []*registry.Service)) {
	s.RestoreAll(configured, func(r Registry) { restore(r.Name, r.Services) })
}

// RestoreAll reads the state file and calls restore for every configured registry it holds with
// the same name and type, in configuration order (Registry.Rules is nil when the file does not
// know the registry's rules: a version 1 file, or a registry that never sent rules). The file is used whole or not at all: a file
// that cannot be read or decoded completely restores nothing, and its problem is logged as an
// error and shown in Status (never fatal: the bridge then starts as if it had no file). Call it
// once, before the adapters start.
func (s *Store) RestoreAll(configured []Ref, restore func(Registry)) {
	start := s.clock.Now()
	saved, err := Load(s.cfg.File)
	var ls LoadStatus
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ls.Result = LoadNoFile
		s.log.Info("no state file yet: registries that cannot be read at start are waited for", "file", s.cfg.File)
	case err != nil:
		ls.Result, ls.Error = LoadIgnored, err.Error()
		s.met.loadFailed.Set(1)
		s.log.Error("state file is unusable and ignored: registries that cannot be read at start are waited for, "+
			"not restored; it is replaced at the next write", "file", s.cfg.File, "error", err)
	default:
		ls.Result, ls.Written = LoadRestored, saved.Written
		byName := make(map[string]Registry, len(saved.Registries))
		for _, r := range saved.Registries {
			byName[r.Name] = r
		}
		for _, c := range configured {
			r, ok := byName[c.Name]
			if !ok {
				ls.Missing = append(ls.Missing, c.Name)
				continue
			}
			delete(byName, c.Name)
			if r.Type != c.Type {
				ls.Skipped = append(ls.Skipped, SkippedRegistry{Name: r.Name, Type: r.Type,
					Reason: fmt.Sprintf("registry %q is now configured with type %s", c.Name, c.Type)})
				continue
			}
			instances := 0
			for _, svc := range r.Services {
				instances += len(svc.Instances)
			}
			restore(r)
			ls.Restored = append(ls.Restored, RestoredRegistry{Name: r.Name, Services: len(r.Services), Instances: instances, Rules: len(r.Rules)})
		}
		for _, r := range saved.Registries {
			if _, left := byName[r.Name]; left {
				ls.Skipped = append(ls.Skipped, SkippedRegistry{Name: r.Name, Type: r.Type, Reason: "no longer configured"})
			}
		}
		for _, sk := range ls.Skipped {
			s.log.Warn("state file holds a registry no configured registry matches; not restored", "file", s.cfg.File,
				"registry", sk.Name, "type", sk.Type, "reason", sk.Reason)
		}
		s.met.restored.Set(float64(len(ls.Restored)))
		s.log.Info("state file read", "file", s.cfg.File, "written", saved.Written, "age", start.Sub(saved.Written).Round(time.Second).String(),
			"restored", len(ls.Restored), "notInFile", ls.Missing, "took", s.clock.Now().Sub(start).String())
	}
	s.mu.Lock()
	s.status.Load = ls
	s.mu.Unlock()
}

// Run keeps the file up to date with src until ctx is cancelled, then writes what is not yet
// written and returns. Writes are spaced by the configured interval (and by ten times the
// previous write's duration), except that a registry's first full sync is written at once.
// A failed write is logged, shown in Status and retried after the interval.
func (s *Store) Run(ctx context.Context, src Source) {
	if removed, err := removeLeftovers(s.cfg.File); err != nil {
		s.log.Warn("cannot remove temporary files an interrupted write left", "file", s.cfg.File, "error", err)
	} else if len(removed) > 0 {
		s.log.Info("removed temporary files an interrupted write left", "files", removed)
	}
	// The file already holds what was restored; write when something changes from there. Every
	// registry's first sync in this run counts as a change.
	savedRev, _ := src.Revision()
	savedSynced := 0
	var lastWrite time.Time
	gap := s.cfg.Interval
	failing := false
	var timer <-chan time.Time

	save := func(rev uint64, synced int) {
		now := s.clock.Now()
		took, err := s.save(src.Collect(), now)
		lastWrite = now
		gap = max(s.cfg.Interval, 10*took)
		failing = err != nil
		if !failing {
			savedRev, savedSynced = rev, synced
		}
	}
	for {
		select {
		case <-ctx.Done():
			if rev, synced := src.Revision(); rev != savedRev || synced != savedSynced || failing {
				save(rev, synced)
			}
			return
		case <-src.Changes():
		case <-timer:
			timer = nil
		}
		rev, synced := src.Revision()
		if rev == savedRev && synced == savedSynced && !failing {
			continue
		}
		now := s.clock.Now()
		due := lastWrite.Add(gap)
		// A first sync is written at once, so a restart soon after it finds it; not while
		// writes fail, which would retry on every change.
		if (synced > savedSynced && !failing) || !now.Before(due) {
			save(rev, synced)
			if failing {
				timer = s.clock.After(gap)
			}
			continue
		}
		if timer == nil {
			timer = s.clock.After(due.Sub(now))
		}
	}
}

// save writes regs now and records the outcome; it returns how long the write took.
func (s *Store) save(regs []Registry, now time.Time) (time.Duration, error) {
	start := time.Now() // the real duration, whatever the injected clock says
	size, err := write(s.cfg.File, regs, now)
	took := time.Since(start)
	services, instances := 0, 0
	for _, r := range regs {
		services += len(r.Services)
		for _, svc := range r.Services {
			instances += len(svc.Instances)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Writes++
	if err != nil {
		s.status.WriteErrors++
		first := s.status.LastError == ""
		s.status.LastError, s.status.LastErrorTime = err.Error(), now
		s.met.writes.WithLabelValues("error").Inc()
		if first {
			s.log.Error("cannot write the state file: a restart now would not restore the latest services; retrying",
				"file", s.cfg.File, "error", err, "retryAfter", max(s.cfg.Interval, 10*took).String())
		} else {
			s.log.Debug("state file write failed again", "file", s.cfg.File, "error", err)
		}
		return took, err
	}
	if s.status.LastError != "" {
		s.log.Info("state file written again after failures", "file", s.cfg.File)
	}
	s.status.LastError, s.status.LastErrorTime = "", time.Time{}
	s.status.LastWrite, s.status.LastWriteBytes, s.status.LastWriteDuration = now, size, took.Round(time.Microsecond).String()
	s.met.writes.WithLabelValues("ok").Inc()
	s.met.duration.Observe(took.Seconds())
	s.met.bytes.Set(float64(size))
	s.met.lastWrite.Set(float64(now.UnixNano()) / 1e9)
	s.log.Debug("state file written", "file", s.cfg.File, "registries", len(regs), "services", services,
		"instances", instances, "bytes", size, "took", took.String())
	return took, nil
}

// Status reports the file's load result and writes.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Load.Restored = append([]RestoredRegistry(nil), st.Load.Restored...)
	st.Load.Skipped = append([]SkippedRegistry(nil), st.Load.Skipped...)
	st.Load.Missing = append([]string(nil), st.Load.Missing...)
	return st
}

type metrics struct {
	writes               *prometheus.CounterVec
	duration             prometheus.Histogram
	bytes, lastWrite     prometheus.Gauge
	restored, loadFailed prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_state_writes_total",
			Help: "Writes of the state file (each registry's last-known services), by result (ok, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcp_bridge_state_write_duration_seconds",
			Help:    "Time to write the state file (encode, compress, fsync, rename).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_state_file_bytes",
			Help: "Size of the state file at its last write.",
		}),
		lastWrite: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_state_last_write_timestamp_seconds",
			Help: "When the state file was last written.",
		}),
		restored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_state_restored_registries",
			Help: "Registries whose last-known services were restored from the state file at start.",
		}),
		loadFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_state_load_failed",
			Help: "1 if the state file found at start was unusable (corrupt, truncated, foreign or another version) and ignored.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.writes, m.duration, m.bytes, m.lastWrite, m.restored, m.loadFailed} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
