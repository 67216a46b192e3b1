package mcp

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// entry is one resource, marshalled once per (namespace, name, version) and shared by every
// snapshot that still contains it at that version.
type entry struct {
	src        *Resource // what it was built from: the same pointer again skips key comparisons
	ns, name   string
	key        string // "<ns>/<name>": metadata.name and the Delta resource name
	srcVersion string // the caller's Version; "" forces a marshal on every Set
	version    string // srcVersion, or a digest of the envelope when srcVersion is ""
	cut        bool   // a chunk ends after this entry (decided by the key alone)
	// parts is the entry exactly as it appears in DiscoveryResponse.resources (field tag, length,
	// Any{type_url, value}), in up to three pieces so the body is not held twice: the head (tags,
	// lengths, type URLs and the envelope's metadata, a few hundred bytes), the body's value
	// itself (the caller's Resource.Body.Value, shared, never copied: for a ServiceEntry it is
	// translate's encoding) and the body's unknown fields, if it has any; a body of at most
	// inlineBodyBytes is copied into the head instead. A SotW body is the
	// plain sequence of its entries' parts. Each is boxed once here so that no send allocates per
	// piece. The Any's value, the envelope, starts at parts[0][envOff:].
	parts  []mem.Buffer
	envOff int
	size   int // bytes in parts
}

// envelope returns the istio.mcp.v1alpha1.Resource bytes in one new slice (Delta sends them as
// an Any's value, which its proto codec copies anyway).
func (e *entry) envelope() []byte {
	env := make([]byte, 0, e.size-e.envOff)
	env = append(env, e.parts[0].ReadOnlyData()[e.envOff:]...)
	for _, p := range e.parts[1:] {
		env = append(env, p.ReadOnlyData()...)
	}
	return env
}

// appendWire appends the entry's DiscoveryResponse.resources bytes to dst.
func (e *entry) appendWire(dst []byte) []byte {
	for _, p := range e.parts {
		dst = append(dst, p.ReadOnlyData()...)
	}
	return dst
}

// chunkEntries is the average number of entries per chunk. A chunk ends after an entry whose
// key hashes to 0 modulo chunkEntries, so boundaries depend on keys only: a change, insertion or
// removal rebuilds one chunk (two when a boundary entry goes), and replicas cut alike.
const chunkEntries = 256

// chunk is a run of consecutive entries with their parts in order (references to the entries'
// bytes, not a copy) and a digest of their keys and versions. A snapshot's response body is its
// chunks' parts in order; a chunk whose entries did not change is shared with the previous
// snapshot, so a Set lists and hashes O(changed) entries, not the whole collection.
type chunk struct {
	entries []*entry
	parts   []mem.Buffer
	size    int // bytes in parts
	digest  [sha256.Size]byte
}

// snapshot is one immutable state of a collection. Streams keep sending from the snapshot they
// picked while Set builds the next one.
type snapshot struct {
	collection string    // "" for the shared empty snapshot answering collections never set
	version    string    // deterministic hash of (key, version) of every entry: replicas agree
	created    time.Time // when Set made it: push latency is measured from here
	entries    []*entry  // sorted by (ns, name)
	chunks     []*chunk
	header     []byte         // DiscoveryResponse field 1 (version_info), shared by every response
	body       [][]mem.Buffer // DiscoveryResponse field 2 (resources): the chunks' parts
	parts      int            // buffers in body: a send lists them all (codec.go)
	size       int            // bytes in body
	// What changed since the snapshot this one was built from, so a Delta client that has exactly
	// that base is answered in O(changed).
	baseVersion string
	changed     []*entry
	removed     []string
	// seq numbers the collection's snapshots (the empty one is 0); marks holds, for the last few,
	// when the oldest registry change each carries reached the bridge (Server.SetAt), so a push
	// that coalesced several versions is timed from the oldest change it carries.
	seq   uint64
	marks []changeMark
}

// changeMark is when the changes of snapshot seq began.
type changeMark struct {
	seq uint64
	at  time.Time
}

// maxChangeMarks bounds snapshot.marks: a client further behind is timed from the oldest kept.
const maxChangeMarks = 32

// stamp numbers next after prev and records when its changes began (zero: Set's own time).
func (next *snapshot) stamp(prev *snapshot, changedAt time.Time) {
	if changedAt.IsZero() || changedAt.After(next.created) {
		changedAt = next.created
	}
	next.seq = prev.seq + 1
	keep := prev.marks[max(0, len(prev.marks)-(maxChangeMarks-1)):]
	next.marks = append(append(make([]changeMark, 0, len(keep)+1), keep...), changeMark{next.seq, changedAt})
}

// changedAfter is when the oldest change not in snapshot seq (and in this one) began.
func (s *snapshot) changedAfter(seq uint64) time.Time {
	for _, m := range s.marks {
		if m.seq > seq {
			return m.at
		}
	}
	return s.created
}

// buildStats says what building a snapshot cost; the server turns it into metrics.
type buildStats struct {
	marshalled, marshalledBytes int
	builtBytes                  int      // response body bytes listed in new chunks (referenced, not copied)
	skipped                     []string // resources not served, with the reason
}

func newEmptySnapshot(collection string) *snapshot {
	s := &snapshot{collection: collection, created: time.Now()}
	s.finish(nil)
	return s
}

// buildSnapshot makes the next snapshot of a collection from the previous one (never nil; the
// empty snapshot for a collection never set) and the full new content. It marshals only resources
// whose (key, Version) is new, and returns prev itself when nothing changed.
func buildSnapshot(collection string, prev *snapshot, rs []*Resource) (*snapshot, buildStats) {
	next, st, sorted := mergeResources(collection, prev, rs)
	if !sorted {
		// Rare: callers pass (Namespace, Name) order. Sort a copy and merge again; nothing was
		// marshalled twice that matters (the first pass's work is discarded).
		next, st, _ = mergeResources(collection, prev, sortedResources(rs))
	}
	if len(next.changed) == 0 && len(next.removed) == 0 && prev.collection == collection {
		return prev, st
	}
	st.builtBytes = next.finish(prev)
	return next, st
}

// mergeResources walks rs and prev's entries together, reusing entries whose (key, Version) is
// unchanged. It reports sorted=false, and stops, at the first resource out of order.
func mergeResources(collection string, prev *snapshot, rs []*Resource) (*snapshot, buildStats, bool) {
	var st buildStats
	next := &snapshot{collection: collection, baseVersion: prev.version, created: time.Now()}
	next.entries = make([]*entry, 0, len(rs))
	old := prev.entries
	i := 0
	var last *Resource // the previous resource served
	lastOld := -1      // index in old of the entry reused for last, -1 if none
	for _, r := range rs {
		if r == nil {
			continue
		}
		// The same pointer as the next old entry, right after its predecessor: unchanged and in
		// order without comparing keys. This is the common case for a Set after one change.
		if i < len(old) && old[i].src == r && lastOld == i-1 && r.Version != "" && old[i].srcVersion == r.Version {
			next.entries = append(next.entries, old[i])
			last, lastOld = r, i
			i++
			continue
		}
		lastOld = -1
		if last != nil {
			switch c := compareKey(last.Namespace, last.Name, r); {
			case c > 0:
				return nil, st, false
			case c == 0:
				st.skipped = append(st.skipped, fmt.Sprintf("%s/%s: duplicate, the first one is served", r.Namespace, r.Name))
				continue
			}
		}
		switch {
		case r.Name == "":
			st.skipped = append(st.skipped, fmt.Sprintf("%s/<empty name>: a resource needs a name", r.Namespace))
			continue
		case r.Body == nil:
			st.skipped = append(st.skipped, fmt.Sprintf("%s/%s: no body (Istiod would drop it)", r.Namespace, r.Name))
			continue
		}
		last = r
		for i < len(old) && compareKey(old[i].ns, old[i].name, r) < 0 {
			next.removed = append(next.removed, old[i].key)
			i++
		}
		var was *entry
		if i < len(old) && compareKey(old[i].ns, old[i].name, r) == 0 {
			was = old[i]
			i++
		}
		if was != nil && r.Version != "" && was.srcVersion == r.Version {
			next.entries = append(next.entries, was)
			lastOld = i - 1
			continue
		}
		e, err := marshalEntry(r)
		if err != nil {
			st.skipped = append(st.skipped, fmt.Sprintf("%s/%s: %v", r.Namespace, r.Name, err))
			if was != nil {
				next.removed = append(next.removed, was.key)
			}
			continue
		}
		st.marshalled++
		st.marshalledBytes += e.size
		if was != nil && was.version == e.version {
			e = was // same content under an empty Version: keep the old entry, nothing changed
		} else {
			next.changed = append(next.changed, e)
		}
		next.entries = append(next.entries, e)
	}
	for ; i < len(old); i++ {
		next.removed = append(next.removed, old[i].key)
	}
	return next, st, true
}

// finish cuts the entries into chunks, reusing prev's unchanged chunks, and derives the version
// and the shared response parts. It returns the bytes of newly built chunks.
func (s *snapshot) finish(prev *snapshot) int {
	reusable := map[*entry]*chunk{}
	if prev != nil {
		for _, c := range prev.chunks {
			reusable[c.entries[0]] = c
		}
	}
	built := 0
	start := 0
	for k, e := range s.entries {
		if !e.cut && k != len(s.entries)-1 {
			continue
		}
		run := s.entries[start : k+1]
		start = k + 1
		if c := reusable[run[0]]; c != nil && slices.Equal(c.entries, run) {
			s.chunks = append(s.chunks, c)
			continue
		}
		c := newChunk(run)
		built += c.size
		s.chunks = append(s.chunks, c)
	}
	h := sha256.New()
	for _, c := range s.chunks {
		h.Write(c.digest[:])
		s.body = append(s.body, c.parts)
		s.parts += len(c.parts)
		s.size += c.size
	}
	s.version = hex.EncodeToString(h.Sum(nil)[:8])
	s.header = protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), s.version)
	return built
}

func newChunk(run []*entry) *chunk {
	c := &chunk{entries: slices.Clone(run)} // own array: never pins an old snapshot's entries
	h := sha256.New()
	n := 0
	for _, e := range run {
		h.Write([]byte(e.key))
		h.Write([]byte{0})
		h.Write([]byte(e.version))
		h.Write([]byte{0})
		n += len(e.parts)
		c.size += e.size
	}
	h.Sum(c.digest[:0])
	c.parts = coalesce(run, n)
	return c
}

// coalesceBytes is the largest part a chunk copies rather than references: runs of small parts
// (heads, small bodies) become one buffer, because gRPC's per-buffer cost on a send outweighs
// copying a few hundred bytes once per chunk build (BenchmarkPhysicalLimit/WorkloadEntry).
const coalesceBytes = 1024

// coalesce lists run's parts for a chunk: each part over coalesceBytes referenced as it is, the
// parts between them copied together (into one array for the chunk, sized up front).
func coalesce(run []*entry, n int) []mem.Buffer {
	total := 0
	for _, e := range run {
		for _, p := range e.parts {
			if p.Len() <= coalesceBytes {
				total += p.Len()
			}
		}
	}
	small := make([]byte, 0, total)
	out := make([]mem.Buffer, 0, min(n, 2*len(run)+1))
	start := 0
	flush := func() {
		if len(small) > start {
			out = append(out, mem.SliceBuffer(small[start:len(small):len(small)]))
			start = len(small)
		}
	}
	for _, e := range run {
		for _, p := range e.parts {
			if p.Len() > coalesceBytes {
				flush()
				out = append(out, p)
				continue
			}
			small = append(small, p.ReadOnlyData()...)
		}
	}
	flush()
	return slices.Clip(out)
}

func concatWire(entries []*entry) []byte {
	size := 0
	for _, e := range entries {
		size += e.size
	}
	body := make([]byte, 0, size)
	for _, e := range entries {
		body = e.appendWire(body)
	}
	return body
}

// inlineBodyBytes is the largest body copied into its entry rather than shared with the caller.
const inlineBodyBytes = 256

// marshalEntry wraps r in its istio.mcp.v1alpha1.Resource envelope and encodes it straight into
// its DiscoveryResponse.resources form, leaving the body's value where the caller holds it.
//
// The bytes are those of proto.MarshalOptions{Deterministic: true} of the DiscoveryResponse
// (TestWireBytesEqualMarshal): Go's protobuf writes known fields in field-number order and
// unknown fields last, so the envelope is metadata (field 1), then body (field 2) as the Any's
// type_url (1), value (2, the shared bytes) and unknown fields.
func marshalEntry(r *Resource) (*entry, error) {
	key := r.Namespace + "/" + r.Name
	meta := &mcpapi.Resource{Metadata: &mcpapi.Metadata{Name: key, Version: r.Version, Labels: r.Labels, Annotations: r.Annotations}}
	metaLen := proto.MarshalOptions{Deterministic: true}.Size(meta)
	typeURL, value, unknown := r.Body.GetTypeUrl(), r.Body.GetValue(), []byte(r.Body.ProtoReflect().GetUnknown())
	bodyLen := len(unknown)
	if typeURL != "" {
		bodyLen += protowire.SizeTag(1) + protowire.SizeBytes(len(typeURL))
	}
	if len(value) > 0 {
		bodyLen += protowire.SizeTag(2) + protowire.SizeBytes(len(value))
	}
	envLen := metaLen + protowire.SizeTag(2) + protowire.SizeBytes(bodyLen)
	anyLen := protowire.SizeTag(1) + protowire.SizeBytes(len(istio.MCPResourceTypeURL)) +
		protowire.SizeTag(2) + protowire.SizeBytes(envLen)
	envHead := metaLen + protowire.SizeTag(2) + protowire.SizeVarint(uint64(bodyLen)) + bodyLen - len(value) - len(unknown)
	headLen := protowire.SizeTag(2) + protowire.SizeBytes(anyLen) - (envLen - envHead)
	if len(value)+len(unknown) <= inlineBodyBytes {
		headLen += len(value) + len(unknown)
	}
	head := make([]byte, 0, headLen)
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(anyLen))
	head = protowire.AppendTag(head, 1, protowire.BytesType)
	head = protowire.AppendString(head, istio.MCPResourceTypeURL)
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(envLen))
	envOff := len(head)
	head, err := proto.MarshalOptions{Deterministic: true, UseCachedSize: true}.MarshalAppend(head, meta)
	if err != nil {
		return nil, fmt.Errorf("marshalling the MCP envelope: %w", err)
	}
	if len(head)-envOff != metaLen {
		// The caller mutated the resource while we marshalled it; refuse rather than send garbage.
		return nil, fmt.Errorf("marshalling the MCP envelope: size changed during marshal (resource mutated concurrently?)")
	}
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(bodyLen))
	if typeURL != "" {
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendString(head, typeURL)
	}
	if len(value) > 0 {
		head = protowire.AppendTag(head, 2, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(len(value)))
	}
	if len(value)+len(unknown) <= inlineBodyBytes {
		// A small body is cheaper copied than referenced (each buffer costs ~60 B here and in
		// every send, and gRPC copies buffer by buffer).
		head = append(append(head, value...), unknown...)
		value, unknown = nil, nil
	}
	parts := make([]mem.Buffer, 1, 3)
	parts[0] = mem.SliceBuffer(head)
	if len(value) > 0 {
		parts = append(parts, mem.SliceBuffer(value))
	}
	if len(unknown) > 0 {
		parts = append(parts, mem.SliceBuffer(unknown))
	}
	kh := fnv.New64a()
	kh.Write([]byte(key))
	e := &entry{src: r, ns: r.Namespace, name: r.Name, key: key, srcVersion: r.Version, version: r.Version,
		cut: kh.Sum64()%chunkEntries == 0, parts: parts, envOff: envOff, size: len(head) + len(value) + len(unknown)}
	if e.version == "" {
		h := sha256.New()
		h.Write(head[envOff:])
		h.Write(value)
		h.Write(unknown)
		e.version = "sha256:" + hex.EncodeToString(h.Sum(nil)[:8])
	}
	return e, nil
}

func compareKey(ns, name string, r *Resource) int {
	return cmp.Or(strings.Compare(ns, r.Namespace), strings.Compare(name, r.Name))
}

func compareResources(a, b *Resource) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return compareKey(a.Namespace, a.Name, b)
}

// sortedResources returns rs ordered by (Namespace, Name). Callers normally pass sorted input,
// which costs one pass; otherwise a sorted copy is made (the caller's slice is never reordered).
func sortedResources(rs []*Resource) []*Resource {
	if slices.IsSortedFunc(rs, compareResources) {
		return rs
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, compareResources)
	return sorted
}

// lookup finds the entry named "<ns>/<name>" by binary search.
func (s *snapshot) lookup(key string) *entry {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	probe := &Resource{Namespace: ns, Name: name}
	i, found := slices.BinarySearchFunc(s.entries, probe, func(e *entry, r *Resource) int {
		return compareKey(e.ns, e.name, r)
	})
	if !found {
		return nil
	}
	return s.entries[i]
}
