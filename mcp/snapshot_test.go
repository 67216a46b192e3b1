package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

func keys(s *snapshot) []string {
	var out []string
	for _, e := range s.entries {
		out = append(out, e.key)
	}
	return out
}

func TestBuildSnapshot(t *testing.T) {
	a, b, c := serviceEntry("default", "a", 1, 0), serviceEntry("default", "b", 1, 0), serviceEntry("prod", "a", 1, 0)
	noVersion := func(r *Resource) *Resource { cp := *r; cp.Version = ""; return &cp }
	cases := []struct {
		name           string
		prev           []*Resource // built first, from empty
		next           []*Resource
		wantKeys       []string
		wantMarshalled int
		wantSkipped    int
		wantChanged    []string
		wantRemoved    []string
		wantSame       bool // the previous snapshot is returned: nothing to push
	}{
		{name: "unsorted input is served sorted", next: []*Resource{c, b, a},
			wantKeys: []string{"default/a", "default/b", "prod/a"}, wantMarshalled: 3, wantChanged: []string{"default/a", "default/b", "prod/a"}},
		{name: "duplicates, nameless, bodiless and nil are skipped",
			next:     []*Resource{a, a, {Namespace: "default"}, {Namespace: "default", Name: "x"}, nil, b},
			wantKeys: []string{"default/a", "default/b"}, wantMarshalled: 2, wantSkipped: 3, wantChanged: []string{"default/a", "default/b"}},
		{name: "same versions marshal nothing", prev: []*Resource{a, b}, next: []*Resource{a, b},
			wantKeys: []string{"default/a", "default/b"}, wantSame: true},
		{name: "one change marshals one", prev: []*Resource{a, b}, next: []*Resource{a, serviceEntry("default", "b", 1, 1)},
			wantKeys: []string{"default/a", "default/b"}, wantMarshalled: 1, wantChanged: []string{"default/b"}},
		{name: "removal", prev: []*Resource{a, b, c}, next: []*Resource{b},
			wantKeys: []string{"default/b"}, wantRemoved: []string{"default/a", "prod/a"}},
		{name: "empty Version re-marshals but unchanged content is no change", prev: []*Resource{noVersion(a)}, next: []*Resource{noVersion(a)},
			wantKeys: []string{"default/a"}, wantMarshalled: 1, wantSame: true},
		{name: "emptied", prev: []*Resource{a}, next: nil, wantRemoved: []string{"default/a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			empty := newEmptySnapshot("")
			prev, _ := buildSnapshot(istio.CollectionServiceEntry, empty, tc.prev)
			input := slices.Clone(tc.next)
			next, st := buildSnapshot(istio.CollectionServiceEntry, prev, tc.next)
			if !slices.Equal(input, tc.next) {
				t.Errorf("the caller's slice was reordered")
			}
			if got := keys(next); !slices.Equal(got, tc.wantKeys) {
				t.Errorf("entries %v, want %v", got, tc.wantKeys)
			}
			if st.marshalled != tc.wantMarshalled || len(st.skipped) != tc.wantSkipped {
				t.Errorf("marshalled %d skipped %v; want %d and %d skipped", st.marshalled, st.skipped, tc.wantMarshalled, tc.wantSkipped)
			}
			if (next == prev) != tc.wantSame {
				t.Errorf("returned the previous snapshot: %v, want %v", next == prev, tc.wantSame)
			}
			if tc.wantSame {
				return
			}
			var changed []string
			for _, e := range next.changed {
				changed = append(changed, e.key)
			}
			if !slices.Equal(changed, tc.wantChanged) || !slices.Equal(next.removed, tc.wantRemoved) {
				t.Errorf("changed %v removed %v; want %v and %v", changed, next.removed, tc.wantChanged, tc.wantRemoved)
			}
			if next.baseVersion != prev.version {
				t.Errorf("base version %s, want the previous snapshot's %s", next.baseVersion, prev.version)
			}
			for _, e := range next.entries {
				for _, p := range prev.entries {
					if p.key == e.key && p.srcVersion == e.srcVersion && p.srcVersion != "" && p != e {
						t.Errorf("%s at an unchanged version was marshalled again", e.key)
					}
				}
			}
		})
	}
}

// TestSnapshotVersionDeterministic: replicas given the same content in any order agree on the
// version; any change of content changes it.
func TestSnapshotVersionDeterministic(t *testing.T) {
	a, b := serviceEntry("default", "a", 1, 0), serviceEntry("default", "b", 1, 0)
	s1, _ := buildSnapshot(istio.CollectionServiceEntry, newEmptySnapshot(""), []*Resource{a, b})
	s2, _ := buildSnapshot(istio.CollectionServiceEntry, newEmptySnapshot(""), []*Resource{b, a})
	s3, _ := buildSnapshot(istio.CollectionServiceEntry, newEmptySnapshot(""), []*Resource{a, serviceEntry("default", "b", 1, 1)})
	if s1.version != s2.version || !bytes.Equal(sotwBytes(s1), sotwBytes(s2)) {
		t.Errorf("same content, different order: versions %s and %s", s1.version, s2.version)
	}
	if s1.version == s3.version {
		t.Errorf("different content, same version %s", s1.version)
	}
}

// TestWireResponse: the hand-assembled response decodes to exactly the DiscoveryResponse
// go-control-plane's types would build, and the golden file shows what Istiod receives.
func TestWireResponse(t *testing.T) {
	se := serviceEntry("default", "reviews", 2, 0)
	se.Annotations = map[string]string{"mcp-bridge.io/registry": "nacos-prod"}
	se2 := serviceEntry("prod", "ratings", 1, 0)
	snap, _ := buildSnapshot(istio.CollectionServiceEntry, newEmptySnapshot(""), []*Resource{se2, se})
	w := newWireResponse(snap, nil, seV1, "nonce-1")
	raw := w.bytes()

	got := &discovery.DiscoveryResponse{}
	if err := proto.Unmarshal(raw, got); err != nil {
		t.Fatalf("the assembled response does not decode: %v", err)
	}
	want := &discovery.DiscoveryResponse{VersionInfo: snap.version, TypeUrl: seV1, Nonce: "nonce-1"}
	for _, r := range []*Resource{se, se2} { // sorted: default/ before prod/
		env, err := anypb.New(&mcpapi.Resource{
			Metadata: &mcpapi.Metadata{Name: r.Namespace + "/" + r.Name, Version: r.Version, Labels: r.Labels, Annotations: r.Annotations},
			Body:     r.Body,
		})
		if err != nil {
			t.Fatal(err)
		}
		want.Resources = append(want.Resources, env)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("assembled response differs from the one built with proto:\n got %v\nwant %v", got, want)
	}
	// The fallback path (no passthrough codec) marshals to the same bytes.
	if fb, err := proto.Marshal(w); err != nil || !bytes.Equal(fb, raw) {
		t.Fatalf("fallback marshal differs (err %v)", err)
	}

	js, err := protojson.MarshalOptions{Multiline: true}.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var norm bytes.Buffer
	if err := json.Indent(&norm, compactJSON(t, js), "", "  "); err != nil {
		t.Fatal(err)
	}
	norm.WriteByte('\n')
	golden.Compare(t, filepath.Join("testdata", "sotw_response.golden.json"), norm.Bytes())
}

// compactJSON removes protojson's deliberately unstable whitespace.
func compactJSON(t *testing.T, js []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, js); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSnapshotHistoryIndependent: a snapshot reached through a series of Sets has the same
// version and bytes as one built from scratch with the same content (replicas with different
// histories agree), while the incremental Set rebuilt only the chunks around the changes.
func TestSnapshotHistoryIndependent(t *testing.T) {
	var a []*Resource
	for i := range 20000 {
		a = append(a, workloadEntry("ns", fmt.Sprintf("we-%05d", i), i, 0))
	}
	b := slices.Clone(a)
	b[10] = workloadEntry("ns", "we-00010", 10, 1)     // changed
	b[4000] = workloadEntry("ns", "we-04000", 4000, 1) // changed
	b = slices.Delete(b, 2000, 2002)                   // removed
	b = slices.Insert(b, 3000, workloadEntry("ns", "we-02999x", 9, 0))

	base, _ := buildSnapshot(istio.CollectionWorkloadEntry, newEmptySnapshot(""), a)
	inc, st := buildSnapshot(istio.CollectionWorkloadEntry, base, b)
	fresh, full := buildSnapshot(istio.CollectionWorkloadEntry, newEmptySnapshot(""), b)
	if inc.version != fresh.version || !bytes.Equal(sotwBytes(inc), sotwBytes(fresh)) {
		t.Fatalf("incremental version %s differs from fresh %s", inc.version, fresh.version)
	}
	if st.marshalled != 3 {
		t.Errorf("incremental Set marshalled %d resources, want 3", st.marshalled)
	}
	if st.builtBytes*5 > full.builtBytes || len(inc.chunks) < 40 {
		t.Errorf("incremental Set built %d of %d bytes in %d chunks; want only the chunks around 4 changes", st.builtBytes, full.builtBytes, len(inc.chunks))
	}
	if got := len(inc.changed) + len(inc.removed); got != 5 {
		t.Errorf("change list has %d entries, want 5 (2 changed, 1 added, 2 removed)", got)
	}
}

// sotwBytes is the response a client would receive for s (no type URL, no nonce).
func sotwBytes(s *snapshot) []byte { return newWireResponse(s, nil, "", "").bytes() }
