package merge

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/internal/clock"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Defaults for the zero values of Options.
const (
	DefaultQuiet              = 100 * time.Millisecond
	DefaultMaxDelay           = time.Second
	DefaultMaxDropRatio       = 0.5
	DefaultDropHold           = 5 * time.Minute
	DefaultInitialSyncTimeout = 30 * time.Second
)

// Options configure a Merger. The YAML-tagged fields are what an operator sets (the bridge's
// configuration embeds them); the zero value of each means its default.
type Options struct {
	Debounce   Debounce   `yaml:"debounce"`
	Protection Protection `yaml:"protection"`
	Duplicates Duplicates `yaml:"duplicates"`

	// Registries are the configured registry names in configuration order: readiness waits for
	// each, and the order decides which registry's attributes win when services are merged.
	// A name first passed to Sink is declared then, after these.
	Registries []string `yaml:"-"`
	// Key is the identity of a service across registries: services from different registries
	// with the same Key are one service (see Duplicates). Wiring passes translate's host naming,
	// so "same service" means "would get the same Istio host". Required. An empty result keeps
	// the service apart from every other.
	Key func(*registry.Service) string `yaml:"-"`
	// Logger defaults to discarding.
	Logger *slog.Logger `yaml:"-"`
	// Metrics is where the merger registers its collectors; nil registers nothing.
	Metrics prometheus.Registerer `yaml:"-"`
	// Clock defaults to the system clock; tests inject a fake one.
	Clock clock.Clock `yaml:"-"`
}

// Debounce batches registry events into snapshots. With the leading edge (the default) an
// isolated event, one arriving when no batch is pending and the last snapshot went out at least
// Quiet ago, is emitted at once; events arriving closer together than that are batched: a
// snapshot is emitted once no event arrived for Quiet, and at the latest Max after the first
// event it contains, so a registry that never stops changing still gets through. Events arriving
// while a snapshot is being handed on (translated and set on the MCP server) always join the next
// batch. With the trailing edge every batch waits for the pause, as before issue 15.
type Debounce struct {
	// Edge is "leading" (the default: an isolated change goes out at once) or "trailing" (every
	// change waits for Quiet, which adds Quiet to every change's latency).
	Edge DebounceEdge `yaml:"edge"`
	// Quiet is the pause in events that ends a batch. Default 100ms.
	Quiet time.Duration `yaml:"quiet"`
	// Max bounds how long an event waits for its batch to end. Default 1s, or Quiet if longer;
	// not less than Quiet.
	Max time.Duration `yaml:"max"`
}

// DebounceEdge says when an isolated event is emitted.
type DebounceEdge string

const (
	// EdgeLeading emits an isolated event at once and batches only events that follow it closely.
	EdgeLeading DebounceEdge = "leading"
	// EdgeTrailing emits every batch once events paused for Quiet.
	EdgeTrailing DebounceEdge = "trailing"
)

// WithDefaults fills in the zero values.
func (d Debounce) WithDefaults() Debounce {
	if d.Edge == "" {
		d.Edge = EdgeLeading
	}
	if d.Quiet == 0 {
		d.Quiet = DefaultQuiet
	}
	if d.Max == 0 {
		d.Max = max(DefaultMaxDelay, d.Quiet)
	}
	return d
}

// Validate checks the values (zero values mean defaults), naming fields by their YAML keys.
func (d Debounce) Validate() error {
	var errs []error
	switch d.Edge {
	case "", EdgeLeading, EdgeTrailing:
	default:
		errs = append(errs, fmt.Errorf("edge: %q is not leading or trailing", d.Edge))
	}
	if d.Quiet < 0 {
		errs = append(errs, fmt.Errorf("quiet: must not be negative"))
	}
	if d.Max < 0 {
		errs = append(errs, fmt.Errorf("max: must not be negative"))
	}
	if dd := d.WithDefaults(); d.Quiet >= 0 && d.Max > 0 && dd.Max < dd.Quiet {
		errs = append(errs, fmt.Errorf("max: %s is shorter than quiet %s", dd.Max, dd.Quiet))
	}
	return errors.Join(errs...)
}

// Protection is the empty protection: what is held when a registry fails or suddenly loses
// instances, and for how long.
type Protection struct {
	// MaxDropRatio is the share of a registry's instances a full state (Replace) may lose at once
	// before it is held as suspicious: with 0.5, a Replace keeping fewer than half the instances
	// is held. The comparison is with the instances currently served, whatever the registry's
	// size, so a registry of 2 instances that suddenly reports none is held, one that reports 1
	// is not. 1 turns this check off. Default 0.5.
	MaxDropRatio float64 `yaml:"maxDropRatio"`
	// DropHold is how long a suspicious drop is held before it is accepted as real. Default 5m.
	DropHold time.Duration `yaml:"dropHold"`
	// FailureHold is how long a failed registry's last-known services are kept. When it passes
	// they are withdrawn (logged as an error). 0, the default: until the registry recovers.
	FailureHold time.Duration `yaml:"failureHold"`
	// InitialSyncTimeout is how long the first snapshot waits for every registry to sync or to
	// have its last-known state restored (from the state file) before it is emitted without the
	// laggards, which are logged as errors and reported by Status. Until then nothing is served,
	// so a restarted bridge never pushes an empty state for a registry that has not been read
	// yet; a registry that fails before its first sync is waited for like a silent one, since
	// failing says nothing about what it holds. Default 30s.
	InitialSyncTimeout time.Duration `yaml:"initialSyncTimeout"`
}

// WithDefaults fills in the zero values.
func (p Protection) WithDefaults() Protection {
	if p.MaxDropRatio == 0 {
		p.MaxDropRatio = DefaultMaxDropRatio
	}
	if p.DropHold == 0 {
		p.DropHold = DefaultDropHold
	}
	if p.InitialSyncTimeout == 0 {
		p.InitialSyncTimeout = DefaultInitialSyncTimeout
	}
	return p
}

// Validate checks the values (zero values mean defaults), naming fields by their YAML keys.
func (p Protection) Validate() error {
	var errs []error
	if p.MaxDropRatio < 0 || p.MaxDropRatio > 1 {
		errs = append(errs, fmt.Errorf("maxDropRatio: %v is not between 0 and 1", p.MaxDropRatio))
	}
	if p.DropHold < 0 {
		errs = append(errs, fmt.Errorf("dropHold: must not be negative"))
	}
	if p.FailureHold < 0 {
		errs = append(errs, fmt.Errorf("failureHold: must not be negative (0 holds until the registry recovers)"))
	}
	if p.InitialSyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("initialSyncTimeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// DuplicateMode is the rule for a service that several registries report.
type DuplicateMode string

const (
	// DuplicateMerge serves one service with the endpoints of all of them.
	DuplicateMerge DuplicateMode = "merge"
	// DuplicatePrefer serves the service of the highest-priority registry and shadows the others.
	DuplicatePrefer DuplicateMode = "prefer"
)

// Duplicates declare what happens to a service (by Options.Key) present in several registries.
// Whatever the mode, every duplicate is shown on Status, counted in a metric and logged when it
// appears and disappears.
type Duplicates struct {
	// Mode is "merge" (the default) or "prefer".
	//
	// merge: one service. Its Registry, kind, names and labels come from the first registry in
	// configuration order; ports are the union by name (a port name with different protocols
	// keeps the first registry's and the conflict is reported); instances are all of theirs,
	// each labelled mcp-bridge.io/registry=<registry>, except that an endpoint registered in
	// several registries (same address and port numbers, as during a dual-registration
	// migration) is served once, from the first registry, so it does not get double weight.
	//
	// prefer: the service of the first registry in Prefer order that has it is served as it is;
	// the others are shadowed.
	Mode DuplicateMode `yaml:"mode"`
	// Prefer lists registry names, highest priority first, for mode prefer. Registries not
	// listed come after, in configuration order.
	Prefer []string `yaml:"prefer"`
}

// WithDefaults fills in the zero values.
func (d Duplicates) WithDefaults() Duplicates {
	if d.Mode == "" {
		d.Mode = DuplicateMerge
	}
	return d
}

// Validate checks the rule, naming fields by their YAML keys. With registries (the configured
// names) it also checks that Prefer names only those.
func (d Duplicates) Validate(registries []string) error {
	var errs []error
	switch d.Mode {
	case DuplicateMerge, DuplicatePrefer, "":
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not merge or prefer", d.Mode))
	}
	if len(d.Prefer) > 0 && d.Mode != DuplicatePrefer {
		errs = append(errs, fmt.Errorf("prefer: only used with mode prefer"))
	}
	seen := map[string]bool{}
	for _, name := range d.Prefer {
		if seen[name] {
			errs = append(errs, fmt.Errorf("prefer: %q is listed twice", name))
		}
		seen[name] = true
		if registries != nil && !slices.Contains(registries, name) {
			errs = append(errs, fmt.Errorf("prefer: %q is not a configured registry", name))
		}
	}
	return errors.Join(errs...)
}

// RegistryLabel is the instance label that names the registry an instance came from, set on
// the instances of services merged from several registries.
const RegistryLabel = "mcp-bridge.io/registry"

// WithDefaults fills in the zero values.
func (o Options) WithDefaults() Options {
	o.Debounce = o.Debounce.WithDefaults()
	o.Protection = o.Protection.WithDefaults()
	o.Duplicates = o.Duplicates.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	return o
}

// Validate checks the operator-set fields, naming each by its YAML path.
func (o Options) Validate() error {
	var errs []error
	for _, b := range []struct {
		key string
		err error
	}{
		{"debounce", o.Debounce.Validate()},
		{"protection", o.Protection.Validate()},
		{"duplicates", o.Duplicates.Validate(o.Registries)},
	} {
		for _, e := range unjoin(b.err) {
			errs = append(errs, fmt.Errorf("%s.%w", b.key, e))
		}
	}
	seen := map[string]bool{}
	for _, name := range o.Registries {
		if seen[name] {
			errs = append(errs, fmt.Errorf("registries: %q is declared twice", name))
		}
		seen[name] = true
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}
