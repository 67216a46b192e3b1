// Package history keeps the last versions of every resource the bridge served, with when and why
// each changed, within a memory budget, and answers "what changed, when and why" with unified
// diffs. It keeps the versions handed to it (Content, rendered only when a diff is asked for);
// it knows nothing of registries or Istio.
//
// Memory: at most Options.Versions versions per resource, and at most Options.MaxBytes for all of
// them (each Content's Size plus an accounted per-version and per-resource overhead). Past the budget the oldest
// versions of the whole store go first, whichever resource they belong to, so a burst of changes
// ages out old history instead of growing the process.
package history

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults: sized for 10,000 services. A service makes a ServiceEntry and, in workload-entry
// mode, a WorkloadEntry per instance, each ~0.5-1.5 KiB of YAML; 64 MiB keeps every one of
// 20,000-40,000 resources' current version plus several past ones, and the per-resource cap keeps
// one flapping service from owning the budget.
const (
	DefaultVersions = 10
	DefaultMaxBytes = 64 << 20
)

// Accounted overheads (bytes) beyond the strings themselves: the version struct, its slot in the
// resource and in the timeline, the allocator's rounding of the YAML string to its size class, and
// a resource's map entry. Calibrated on amd64 by TestStoreMemoryBound, which measures the heap the
// store holds against its budget.
const (
	versionOverhead  = 288
	resourceOverhead = 160
)

// Options bound the store.
type Options struct {
	// Versions kept per resource (default DefaultVersions).
	Versions int `json:"versions" yaml:"versions"`
	// MaxBytes for the whole store (default DefaultMaxBytes).
	MaxBytes int64 `json:"maxBytes" yaml:"maxBytes"`
}

// Validate rejects negative bounds (zero means the default).
func (o Options) Validate() error {
	if o.Versions < 0 || o.MaxBytes < 0 {
		return fmt.Errorf("versions and maxBytes must be >= 0 (0 = default: %d versions, %d bytes)", DefaultVersions, DefaultMaxBytes)
	}
	return nil
}

// WithDefaults fills unset options.
func (o Options) WithDefaults() Options {
	if o.Versions == 0 {
		o.Versions = DefaultVersions
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return o
}

// Cause is why a push changed resources. Every version recorded by one push shares it, so the
// changes of one batch are grouped by Push.
type Cause struct {
	// Push numbers the pushes that changed something, from 1.
	Push uint64 `json:"push"`
	// Trigger is "start" (the first push), "registry" (registry events) or "reload" (a
	// configuration reload: translate options, static resources, rules of translation).
	Trigger string `json:"trigger"`
	// Registries are the registries whose events were folded into the push, with how many.
	Registries map[string]int `json:"registries,omitempty"`
	// Services and Rules count the merged services and governance rules that changed.
	Services int `json:"services,omitempty"`
	Rules    int `json:"rules,omitempty"`
}

// String is one line for logs and the command line: "push 7: registry events zk×3, file×1 (4 services changed)".
func (c Cause) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "push %d: ", c.Push)
	switch c.Trigger {
	case "registry":
		sb.WriteString("registry events")
		for i, r := range slices.Sorted(maps.Keys(c.Registries)) {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, " %s×%d", r, c.Registries[r])
		}
	case "reload":
		sb.WriteString("configuration reload")
	case "start":
		sb.WriteString("start-up")
	default:
		sb.WriteString(c.Trigger)
	}
	var parts []string
	if c.Services > 0 {
		parts = append(parts, fmt.Sprintf("%d services changed", c.Services))
	}
	if c.Rules > 0 {
		parts = append(parts, fmt.Sprintf("%d rules changed", c.Rules))
	}
	if len(parts) > 0 {
		fmt.Fprintf(&sb, " (%s)", strings.Join(parts, ", "))
	}
	return sb.String()
}

// Content is one version of a resource. It is rendered to text only when a diff is asked for:
// rendering every resource a push changes (all of them at start-up) as YAML would cost the push
// path far more than the push itself, while the resources are immutable and already in memory.
type Content interface {
	// Text renders the version (YAML).
	Text() (string, error)
	// Size is the bytes the version holds, for the byte budget.
	Size() int
}

// Text is Content already rendered.
type Text string

// Text returns t.
func (t Text) Text() (string, error) { return string(t), nil }

// Size is len(t).
func (t Text) Size() int { return len(t) }

// Change is one resource as a push left it.
type Change struct {
	Kind, Namespace, Name string
	// Source is what the resource was made from (a service, a static file).
	Source string
	// Content is the resource; nil when Deleted.
	Content Content
	Deleted bool
}

// Store is the history. Safe for concurrent use.
type Store struct {
	opts Options

	mu        sync.RWMutex
	resources map[string]*resource // by key "Kind/namespace/name"
	// timeline lists every version recorded, oldest first (entries of versions since dropped by
	// the per-resource cap are skipped and compacted away).
	timeline []ref
	stale    int
	bytes    int64
	evicted  uint64
	seq      uint64
}

type ref struct {
	key string
	seq uint64
}

type resource struct {
	kind, namespace, name string
	versions              []*version // oldest first
}

type version struct {
	seq     uint64
	at      time.Time
	cause   *Cause
	source  string
	content Content // nil when deleted
	deleted bool
	// created: no version of the resource existed before this one.
	created bool
}

func (v *version) size() int64 {
	n := int64(len(v.source)) + versionOverhead
	if v.content != nil {
		n += int64(v.content.Size())
	}
	return n
}

func (v *version) text() string {
	if v.content == nil {
		return ""
	}
	t, err := v.content.Text()
	if err != nil {
		return "# rendering failed: " + err.Error() + "\n"
	}
	return t
}

// New returns an empty store.
func New(opts Options) *Store {
	return &Store{opts: opts.WithDefaults(), resources: make(map[string]*resource)}
}

func key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Record stores the versions one push made, at time at, for cause (its Push is set by the store).
// It returns the cause as recorded.
func (s *Store) Record(at time.Time, cause Cause, changes []Change) Cause {
	if len(changes) == 0 {
		return cause
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	cause.Push = s.seq
	c := &cause
	for _, ch := range changes {
		k := key(ch.Kind, ch.Namespace, ch.Name)
		r := s.resources[k]
		if r == nil {
			if ch.Deleted {
				continue // never seen: nothing to remember
			}
			r = &resource{kind: ch.Kind, namespace: ch.Namespace, name: ch.Name}
			s.resources[k] = r
			s.bytes += int64(len(k)) + resourceOverhead
		}
		v := &version{seq: s.seq, at: at, cause: c, source: ch.Source, content: ch.Content, deleted: ch.Deleted}
		if v.deleted {
			v.content = nil
		}
		if len(r.versions) == 0 {
			v.created = !ch.Deleted
		} else if last := r.versions[len(r.versions)-1]; last.deleted {
			v.created = true
		}
		r.versions = append(r.versions, v)
		s.bytes += v.size()
		s.timeline = append(s.timeline, ref{k, s.seq})
		if len(r.versions) > s.opts.Versions {
			s.bytes -= r.versions[0].size()
			r.versions[0] = nil
			r.versions = r.versions[1:]
			s.stale++
		}
	}
	s.evict()
	return cause
}

// evict drops the oldest versions until the store is within MaxBytes, and compacts the timeline.
// The first pass spares each resource's current version (the only one left of a resource that is
// still served): the past goes before the present. Only if the budget is still exceeded do
// current versions go too, oldest first.
func (s *Store) evict() {
	if s.bytes <= s.opts.MaxBytes {
		s.compact()
		return
	}
	for _, spareCurrent := range []bool{true, false} {
		kept := s.timeline[:0]
		i := 0
		for ; i < len(s.timeline) && s.bytes > s.opts.MaxBytes; i++ {
			e := s.timeline[i]
			r := s.resources[e.key]
			if r == nil || len(r.versions) == 0 || r.versions[0].seq != e.seq {
				s.stale--
				continue
			}
			if spareCurrent && len(r.versions) == 1 && !r.versions[0].deleted {
				kept = append(kept, e)
				continue
			}
			s.bytes -= r.versions[0].size()
			r.versions[0] = nil
			r.versions = r.versions[1:]
			s.evicted++
			if len(r.versions) == 0 {
				delete(s.resources, e.key)
				s.bytes -= int64(len(e.key)) + resourceOverhead
			}
		}
		// kept shares the array's head, which it never overtakes (it grows by at most one per
		// entry read): move the unread rest up behind it.
		n := copy(s.timeline[len(kept):], s.timeline[i:])
		s.timeline = s.timeline[:len(kept)+n]
		if s.bytes <= s.opts.MaxBytes {
			break
		}
	}
	s.compact()
}

// compact drops stale timeline entries once they are most of it.
func (s *Store) compact() {
	if s.stale <= len(s.timeline)/2 {
		return
	}
	live := make([]ref, 0, len(s.timeline)-s.stale)
	for _, e := range s.timeline {
		if s.live(e) {
			live = append(live, e)
		}
	}
	s.timeline, s.stale = live, 0
}

// live reports whether the version e names is still kept.
func (s *Store) live(e ref) bool {
	r := s.resources[e.key]
	if r == nil {
		return false
	}
	for _, v := range r.versions {
		if v.seq == e.seq {
			return true
		}
	}
	return false
}

// Query selects history. Kind and Name ("name" or "namespace/name") match exactly when set
// (Kind case-insensitively); Since keeps versions recorded at or after it; Limit caps the
// versions returned (default 100).
type Query struct {
	Kind, Name string
	Since      time.Time
	Limit      int
}

// Version is one recorded version, with the diff from the version before it.
type Version struct {
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
	Cause     Cause     `json:"cause"`
	// CauseText is Cause in words.
	CauseText string `json:"causeText"`
	Source    string `json:"source,omitempty"`
	// Change is "created", "changed" or "deleted".
	Change string `json:"change"`
	// Diff is the unified diff from the previous version; PreviousEvicted says the previous
	// version is no longer kept, so Diff is the whole resource.
	Diff            string `json:"diff"`
	PreviousEvicted bool   `json:"previousEvicted,omitempty"`
}

// Find returns the versions q selects, newest first.
func (s *Store) Find(q Query) []Version {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Version
	for i := len(s.timeline) - 1; i >= 0 && len(out) < q.Limit; i-- {
		e := s.timeline[i]
		r := s.resources[e.key]
		if r == nil || !r.matches(q) {
			continue
		}
		idx := sort.Search(len(r.versions), func(j int) bool { return r.versions[j].seq >= e.seq })
		if idx == len(r.versions) || r.versions[idx].seq != e.seq {
			continue
		}
		v := r.versions[idx]
		if !q.Since.IsZero() && v.at.Before(q.Since) {
			break // the timeline is in time order
		}
		out = append(out, r.view(idx))
	}
	return out
}

func (r *resource) matches(q Query) bool {
	if q.Kind != "" && !strings.EqualFold(q.Kind, r.kind) {
		return false
	}
	if q.Name == "" {
		return true
	}
	if ns, name, ok := strings.Cut(q.Name, "/"); ok {
		return ns == r.namespace && name == r.name
	}
	return q.Name == r.name
}

func (r *resource) view(i int) Version {
	v := r.versions[i]
	out := Version{Kind: r.kind, Namespace: r.namespace, Name: r.name, At: v.at, Cause: *v.cause,
		CauseText: v.cause.String(), Source: v.source, Change: "changed"}
	label := fmt.Sprintf("%s/%s/%s", r.kind, r.namespace, r.name)
	prev := ""
	switch {
	case v.deleted:
		out.Change = "deleted"
	case v.created:
		out.Change = "created"
	}
	if i > 0 {
		prev = r.versions[i-1].text()
	} else if !v.created {
		out.PreviousEvicted = true
	}
	out.Diff = Unified(prev, v.text(), label+" (before)", label+" (after)")
	return out
}

// Stats describe the store's size.
type Stats struct {
	Resources   int   `json:"resources"`
	Versions    int   `json:"versions"`
	Bytes       int64 `json:"bytes"`
	MaxBytes    int64 `json:"maxBytes"`
	PerResource int   `json:"versionsPerResource"`
	// Evicted counts versions dropped for the byte budget (not those past the per-resource cap).
	Evicted uint64 `json:"evicted"`
	Pushes  uint64 `json:"pushes"`
}

// Stats returns the store's size.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Resources: len(s.resources), Bytes: s.bytes, MaxBytes: s.opts.MaxBytes, PerResource: s.opts.Versions,
		Evicted: s.evicted, Pushes: s.seq}
	for _, r := range s.resources {
		st.Versions += len(r.versions)
	}
	return st
}
