// Package file is the registry of type "file": services and instances written in a YAML file
// (format: example.yaml, which is also the embedded default). It is how the bridge starts with
// no configuration, a test tool, and a way to describe services no registry knows.
//
// The file is reloaded when it changes. The adapter watches the file's directory rather than the
// file, because editors and Kubernetes replace files instead of writing them in place: a mounted
// ConfigMap swaps its "..data" symlink atomically to a new timestamped directory, so the path
// keeps its name while the file behind it changes. A slow periodic re-stat catches whatever
// notification is missed (file systems without inotify, a directory created later, a symlink
// pointing outside the watched directory).
//
// Every reload is all or nothing: a file that fails to parse or validate makes the adapter call
// Sink.Fail with every problem and its line, and the merge layer keeps serving the last good
// state; the next good version is sent with Sink.Replace.
package file

import (
	_ "embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

//go:embed example.yaml
var example []byte

// Example returns the embedded example services file, which the bridge serves when started
// without a configuration. The result is a copy the caller may keep.
func Example() []byte { return append([]byte(nil), example...) }

// DefaultMaxBytes is the default limit on the services file's size (64 MiB): far above any real
// estate written by hand or generated (10k services with 100k instances is about 15 MB), low
// enough that a runaway generator or a wrong path (a log file, a disk image) cannot make the
// bridge read and parse gigabytes.
const DefaultMaxBytes = 64 << 20

// DefaultPollInterval is how often the file is re-checked when change notifications are missed.
const DefaultPollInterval = 10 * time.Second

// settleDelay lets a burst of file events (an editor's write-then-rename, a ConfigMap swap's
// five steps) finish before the file is read, so a half-written file is not reported as broken.
const settleDelay = 100 * time.Millisecond

// Config is the "file" block of a registry of type file.
type Config struct {
	// Path is the services file. Empty: the embedded example (see Example), which never changes.
	// The file need not exist at start-up; until it does, the registry is reported as failed.
	Path string `yaml:"path"`
	// PollInterval is how often the file's metadata is re-checked in case a change notification
	// was missed. Default 10s.
	PollInterval time.Duration `yaml:"pollInterval"`
	// MaxBytes is the largest services file read, in bytes. A larger file is reported (with
	// its size and this limit) and the last good version stays in service. Default 64 MiB.
	MaxBytes int64 `yaml:"maxBytes"`
}

// WithDefaults fills in unset fields.
func (c Config) WithDefaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

// Validate checks the configuration without touching the file system.
func (c Config) Validate() error {
	if c.PollInterval < 0 {
		return fmt.Errorf("pollInterval: must not be negative, got %s", c.PollInterval)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("maxBytes: must not be negative, got %d", c.MaxBytes)
	}
	return nil
}

// Secrets returns no credentials: a services file needs none.
func (c Config) Secrets() map[string]registry.Secret { return nil }

// Adapter serves one services file. It implements registry.Adapter and registry.Describer.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// settle and noWatch exist so tests can shorten the wait and exercise the polling fallback.
	settle  time.Duration
	noWatch bool

	status status
}

var (
	_ registry.Adapter   = (*Adapter)(nil)
	_ registry.Describer = (*Adapter)(nil)
)

// New returns an adapter for cfg (defaults are applied here). It does not read the file: Run does.
func New(cfg Config, opts registry.Options) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("file registry %q: %w", opts.Name, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	if opts.Metrics != nil {
		if err := m.register(opts.Metrics); err != nil {
			return nil, fmt.Errorf("file registry %q: registering metrics: %w", opts.Name, err)
		}
	}
	return &Adapter{cfg: cfg, log: log, metrics: m, settle: settleDelay}, nil
}

// Describe reports the file, what was last loaded from it and the current error, if any.
func (a *Adapter) Describe() map[string]any {
	return a.status.describe(a.cfg)
}

type metrics struct {
	reloads   *prometheus.CounterVec
	valid     prometheus.Gauge
	errorLine prometheus.Gauge
	lastLoad  prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcp_bridge_file_reloads_total",
			Help: "Times the services file was read with new content, by result (ok, error).",
		}, []string{"result"}),
		valid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_file_valid",
			Help: "1 when the services file as it is now was loaded, 0 when it is unreadable or invalid (the last good version is still served).",
		}),
		errorLine: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_file_error_line",
			Help: "Line of the first problem in the services file, 0 when it is valid or the problem has no line (see /debug/registries).",
		}),
		lastLoad: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcp_bridge_file_last_load_timestamp_seconds",
			Help: "When the services file was last loaded successfully.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.reloads, m.valid, m.errorLine, m.lastLoad} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
