// Package nacos is the registry of type "nacos": it watches Nacos 2.x servers through the real
// Nacos gRPC protocol (nacos-sdk-go) and reports Spring Cloud, plain, Dubbo 2 interface-level
// ("providers:<interface>:<version>:<group>") and Dubbo 3 application-level services.
//
// Nacos pushes instance changes of subscribed services but never the list of services, so the
// adapter polls the service lists of the selected namespaces and groups (PollInterval), subscribes
// to every selected service, and unsubscribes services that disappear. Pushes are turned into
// whole services and sent as they come; the first complete read is one Replace.
//
// Failure handling: when a list request fails the registry is reported failed (the merge layer
// holds the last-known state). When the server answers again the adapter waits RecoveryDelay for
// applications to re-register their ephemeral instances, reads every service again from the
// server and sends one Replace. The SDK's disk cache is never loaded: only a live server counts.
// A service missing from two lists in a row is dropped (Delete); one list that skips it, as
// paging over a changing list can, withdraws nothing.
//
// The model (docs/registries.md): a service's Namespace is the Nacos namespace id
// ("public" for the default one, whatever id the server uses for it), its Group the Nacos group.
// Host names are translate's business (default "<service>.<group>.<namespace>.nacos"). Instances
// carry Nacos health, enabled flag and weight (x100: 1.0 is 100) faithfully; translate's defaults
// make endpoints of healthy, enabled, weighted instances only.
//
// Known limits of nacos-sdk-go v2.3.2 (not of this package): its logger is process-wide, so with
// several Nacos registries the SDK log goes to the cache directory of the last one created; its
// naming client opens an unauthenticated UDP port for Nacos 1.x pushes, so the adapter builds
// its own from the SDK's gRPC parts (grpcNaming) and opens no listener; and its ServiceInfoHolder sorts a cached instance slice
// in place while handing the same slice to subscription callbacks, which the race detector
// reports when a push meets a subscription answer. The adapter copies each slice at once, and
// the periodic resync re-reads everything.
package nacos

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Adapter watches one Nacos cluster. It implements registry.Adapter and registry.Describer.
type Adapter struct {
	cfg      Config
	log      *slog.Logger
	met      *metrics
	factory  clientFactory
	console  *console
	conv     *converter
	cacheDir string
	include  []*regexp.Regexp
	exclude  []*regexp.Regexp

	// wake tells the loop that pushes arrived.
	wake chan struct{}

	// mu guards what SDK callbacks write: the instances of subscriptions, the dirty set, and
	// pending mapping values (and rules.pending).
	mu             sync.Mutex
	dirty          map[*subscription]struct{}
	mappingPending map[nsIface]string

	// The rest is owned by the Run goroutine.
	sink       registry.Sink
	clients    map[string]namingClient // by namespace
	configs    map[string]configClient // by namespace, with Dubbo.Mapping
	namespaces []string                // the namespaces of the last good poll
	missing    map[subKey]int          // successive lists a subscribed service was missing from
	st         *state
	rules      *ruleState
	synced     bool // the first Replace was sent
	failed     bool // the last poll failed; pushes are held until the recovery Replace
	failMsg    string
	recovering bool

	statusMu sync.Mutex
	status   status
}

// status is what Describe shows; written by the loop under statusMu.
type status struct {
	Namespaces    []string  `json:"namespaces"`
	Subscriptions int       `json:"subscriptions"`
	Unsubscribed  int       `json:"notSubscribed"`
	Instances     int       `json:"instances"`
	Services      int       `json:"services"`
	Mappings      int       `json:"mappings,omitempty"`
	Reachable     bool      `json:"reachable"`
	Synced        bool      `json:"synced"`
	Recovering    bool      `json:"recovering,omitempty"`
	LastPoll      time.Time `json:"lastPoll,omitzero"`
	LastSuccess   time.Time `json:"lastSuccess,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
	LastResync    time.Time `json:"lastResync,omitzero"`
}

// New validates the configuration and returns an adapter; it does not connect yet.
func New(cfg Config, opts registry.Options) (*Adapter, error) {
	return newAdapter(cfg, opts, nil)
}

// newAdapter lets tests substitute the SDK clients.
func newAdapter(cfg Config, opts registry.Options, factory clientFactory) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nacos registry %q: %w", opts.Name, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("nacos registry %q: registering metrics: %w", opts.Name, err)
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = defaultCacheDir(opts.Name)
	}
	con, err := newConsole(cfg)
	if err != nil {
		return nil, fmt.Errorf("nacos registry %q: %w", opts.Name, err)
	}
	if factory == nil {
		factory = &sdkFactory{cfg: cfg, cacheDir: cacheDir}
	}
	a := &Adapter{
		cfg:            cfg,
		log:            log,
		met:            met,
		factory:        factory,
		console:        con,
		conv:           newConverter(cfg),
		cacheDir:       cacheDir,
		wake:           make(chan struct{}, 1),
		dirty:          make(map[*subscription]struct{}),
		mappingPending: make(map[nsIface]string),
		clients:        make(map[string]namingClient),
		configs:        make(map[string]configClient),
		missing:        make(map[subKey]int),
	}
	a.st = newState(a)
	a.rules = newRuleState()
	for _, p := range cfg.Include {
		a.include = append(a.include, regexp.MustCompile(anchor(p))) // validated
	}
	for _, p := range cfg.Exclude {
		a.exclude = append(a.exclude, regexp.MustCompile(anchor(p)))
	}
	return a, nil
}

// Run watches the registry until ctx is cancelled.
func (a *Adapter) Run(ctx context.Context, sink registry.Sink) error {
	a.sink = sink
	defer a.closeClients()

	poll := time.NewTimer(0)
	defer poll.Stop()
	var resync <-chan time.Time
	if a.cfg.ResyncInterval > 0 {
		t := time.NewTicker(a.cfg.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	recoverT := time.NewTimer(time.Hour)
	recoverT.Stop()
	defer recoverT.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			if ok := a.poll(ctx); ok && a.failed && a.synced && !a.recovering {
				// The server answers again: give applications time to re-register first.
				a.recovering = true
				a.setStatus(func(s *status) { s.Recovering = true })
				a.log.Info("Nacos answers again; re-reading everything after the recovery delay", "delay", a.cfg.RecoveryDelay)
				recoverT.Reset(max(a.cfg.RecoveryDelay, 0))
			}
			poll.Reset(a.cfg.PollInterval)
		case <-recoverT.C:
			a.recover(ctx)
		case <-resync:
			if a.synced && !a.failed {
				a.resyncAll(ctx)
				a.flush(ctx, true)
			}
		case <-a.wake:
			if a.synced && !a.failed {
				a.flush(ctx, false)
			}
		}
	}
}

// closeClients ends the SDK clients' connections and goroutines.
func (a *Adapter) closeClients() {
	for ns, c := range a.clients {
		c.CloseClient()
		delete(a.clients, ns)
	}
	for ns, c := range a.configs {
		c.CloseClient()
		delete(a.configs, ns)
	}
}

// fail reports the registry unreachable, once per failure and again when the reason changes.
func (a *Adapter) fail(err error) {
	a.recovering = false
	msg := err.Error()
	a.setStatus(func(s *status) { s.Reachable, s.LastError, s.Recovering = false, msg, false })
	a.met.up.Set(0)
	if a.failed && msg == a.failMsg {
		return
	}
	a.log.Warn("Nacos cannot be read; the last-known services are held", "error", msg)
	a.failed, a.failMsg = true, msg
	a.sink.Fail(err)
}

// recover reads everything again after the server came back, and sends it whole.
func (a *Adapter) recover(ctx context.Context) {
	if !a.recovering {
		return
	}
	want, err := a.list(ctx)
	if err != nil {
		a.fail(err)
		return
	}
	a.reconcile(ctx, want)
	a.refreshMappings(ctx)
	a.resyncAll(ctx)
	a.recovering, a.failed, a.failMsg = false, false, ""
	a.setStatus(func(s *status) { s.Recovering = false })
	a.replace(ctx)
	a.log.Info("Nacos recovered; full state sent", "services", a.st.emittedCount())
}

func (a *Adapter) setStatus(f func(*status)) {
	a.statusMu.Lock()
	f(&a.status)
	a.statusMu.Unlock()
}

// Describe reports what the status page shows beyond the sink's view. Credentials appear only
// as where they come from.
func (a *Adapter) Describe() map[string]any {
	a.statusMu.Lock()
	st := a.status
	st.Namespaces = append([]string(nil), a.status.Namespaces...)
	a.statusMu.Unlock()
	auth := map[string]any{}
	if a.cfg.Username != "" {
		auth["username"] = a.cfg.Username
		auth["password"] = a.cfg.Password.String()
	}
	if !a.cfg.AccessKey.IsZero() {
		auth["accessKey"] = a.cfg.AccessKey.String()
		auth["secretKey"] = a.cfg.SecretKey.String()
	}
	return map[string]any{
		"servers":      a.cfg.Servers,
		"flavor":       a.cfg.Flavor,
		"groups":       a.cfg.Groups,
		"pollInterval": a.cfg.PollInterval.String(),
		"cacheDir":     a.cacheDir,
		"tls":          a.cfg.TLS.Enabled,
		"auth":         auth,
		"dubboMapping": a.cfg.Dubbo.Mapping,
		"dubboRules":   a.cfg.Dubbo.Rules,
		"status":       st,
	}
}
