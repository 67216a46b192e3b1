package history

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// apply applies a unified diff made by Unified to a, for checking diffs by their effect.
func apply(t testing.TB, a, diff string) string {
	t.Helper()
	if diff == "" {
		return a
	}
	src := splitLines(a)
	var out []string
	pos := 0
	lines := strings.Split(strings.TrimSuffix(diff, "\n"), "\n")[2:]
	for _, l := range lines {
		if strings.HasPrefix(l, "@@") {
			var as, an, bs, bn int
			if _, err := fmt.Sscanf(normalizeHunk(l), "@@ -%d,%d +%d,%d @@", &as, &an, &bs, &bn); err != nil {
				t.Fatalf("hunk header %q: %v", l, err)
			}
			start := as - 1
			if an == 0 {
				start = as
			}
			out = append(out, src[pos:start]...)
			pos = start
			continue
		}
		switch l[0] {
		case ' ':
			if src[pos] != l[1:] {
				t.Fatalf("context %q does not match line %d %q", l, pos+1, src[pos])
			}
			out = append(out, l[1:])
			pos++
		case '-':
			if src[pos] != l[1:] {
				t.Fatalf("removal %q does not match line %d %q", l, pos+1, src[pos])
			}
			pos++
		case '+':
			out = append(out, l[1:])
		}
	}
	out = append(out, src[pos:]...)
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// normalizeHunk writes "-5" as "-5,1" so one Sscanf format reads every header.
func normalizeHunk(h string) string {
	f := strings.Fields(h)
	for i := 1; i <= 2; i++ {
		if !strings.Contains(f[i], ",") {
			f[i] += ",1"
		}
	}
	return strings.Join(f, " ")
}

func TestUnified(t *testing.T) {
	tests := []struct {
		name, a, b string
		want       string // exact diff; "" = only check it applies
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", "--- x\n+++ y\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"created", "", "a\nb\n", "--- x\n+++ y\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"deleted", "a\n", "", "--- x\n+++ y\n@@ -1 +0,0 @@\n-a\n"},
		{"far apart changes are two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n",
			"--- x\n+++ y\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n"},
		{"insert in the middle", "a\nb\nc\nd\n", "a\nb\nx\nc\nd\n", "--- x\n+++ y\n@@ -1,4 +1,5 @@\n a\n b\n+x\n c\n d\n"},
		{"reordered", "a\nb\nc\nd\ne\n", "e\nd\nc\nb\na\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unified(tt.a, tt.b, "x", "y")
			if tt.want != "" && got != tt.want {
				t.Fatalf("diff:\n%s\nwant:\n%s", got, tt.want)
			}
			if tt.a == tt.b && got != "" {
				t.Fatalf("equal inputs gave a diff:\n%s", got)
			}
			if res := apply(t, tt.a, got); res != tt.b {
				t.Fatalf("applying the diff gives %q, want %q\n%s", res, tt.b, got)
			}
		})
	}
}

// FuzzUnified: applying the diff of a to b gives b.
func FuzzUnified(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Add("", "x\n")
	f.Add("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n0\n4\n5\n6\n7\n8\n0\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		// Lines as Unified reads them: newline-terminated, no line containing only a trailing
		// fragment, and bounded so one case stays fast.
		norm := func(s string) string {
			if len(s) > 2000 {
				s = s[:2000]
			}
			if s != "" && !strings.HasSuffix(s, "\n") {
				s += "\n"
			}
			return s
		}
		a, b = norm(a), norm(b)
		if res := apply(t, a, Unified(a, b, "a", "b")); res != b {
			t.Fatalf("applying the diff of %q to %q gives %q", a, b, res)
		}
	})
}

func TestStoreVersionCapAndCauses(t *testing.T) {
	s := New(Options{Versions: 3})
	at := time.Unix(1000, 0)
	for i := range 5 {
		c := s.Record(at.Add(time.Duration(i)*time.Second), Cause{Trigger: "registry", Registries: map[string]int{"zk": i + 1}},
			[]Change{{Kind: "ServiceEntry", Namespace: "ns", Name: "a", Content: Text(fmt.Sprintf("v: %d\n", i))}})
		if c.Push != uint64(i+1) {
			t.Fatalf("push %d numbered %d", i+1, c.Push)
		}
	}
	vs := s.Find(Query{Kind: "ServiceEntry", Name: "ns/a"})
	if len(vs) != 3 {
		t.Fatalf("%d versions kept, want the cap 3", len(vs))
	}
	if vs[0].Cause.Push != 5 || vs[2].Cause.Push != 3 || !vs[2].PreviousEvicted || vs[2].Change != "changed" {
		t.Fatalf("versions %+v", vs)
	}
	if vs[0].Diff != "--- ServiceEntry/ns/a (before)\n+++ ServiceEntry/ns/a (after)\n@@ -1 +1 @@\n-v: 3\n+v: 4\n" {
		t.Fatalf("diff %q", vs[0].Diff)
	}
	if got := s.Find(Query{Since: at.Add(4 * time.Second)}); len(got) != 1 {
		t.Fatalf("since: %d versions, want 1", len(got))
	}
	if got := s.Find(Query{Name: "b"}); len(got) != 0 {
		t.Fatalf("unknown name matched %d", len(got))
	}
	if len(s.timeline) > 2*3+1 {
		t.Fatalf("timeline keeps %d entries for 3 live versions: stale entries are not compacted", len(s.timeline))
	}
}

// TestStoreMemoryBound: 10,000 services (a ServiceEntry and a WorkloadEntry each) changing 12
// times, recorded with the default options: the accounted size stays within MaxBytes, and so does
// the heap the store really holds (measured, with a 10% margin for map growth and GC timing).
func TestStoreMemoryBound(t *testing.T) {
	const services, rounds = 10000, 12
	yaml := func(kind string, i, round int) string {
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: %s\nmetadata:\n  name: svc-%05d.shop\n  namespace: shop\n"+
			"  resourceVersion: %016x\nspec:\n  hosts:\n  - svc-%05d.shop\n  ports:\n  - name: http\n    number: 8080\n    protocol: HTTP\n"+
			"  endpoints:\n  - address: 10.%d.%d.%d\n    labels:\n      version: v%d\n      security.istio.io/tlsMode: disabled\n"+
			"    ports:\n      http: 8080\n    weight: 100\n%s", kind, i, i*31+round, i, round, i/256, i%256, round, strings.Repeat("  # padding to a realistic size\n", 12))
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s := New(Options{})
	start := time.Now()
	var versionBytes int64
	for round := range rounds {
		changes := make([]Change, 0, 2*services)
		for i := range services {
			for _, kind := range []string{"ServiceEntry", "WorkloadEntry"} {
				y := yaml(kind, i, round)
				versionBytes += int64(len(y))
				changes = append(changes, Change{Kind: kind, Namespace: "shop", Name: fmt.Sprintf("svc-%05d.shop", i), Source: fmt.Sprintf("zk/svc-%05d", i), Content: Text(y)})
			}
		}
		s.Record(time.Now(), Cause{Trigger: "registry", Registries: map[string]int{"zk": services}}, changes)
		if st := s.Stats(); st.Bytes > st.MaxBytes {
			t.Fatalf("round %d: %d bytes accounted, over the budget %d", round, st.Bytes, st.MaxBytes)
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := s.Stats()
	t.Logf("%d services × 2 resources × %d rounds = %d MiB of YAML recorded in %v: store keeps %d versions of %d resources, "+
		"%d MiB accounted (budget %d MiB), %d MiB heap held, %d versions evicted",
		services, rounds, versionBytes>>20, elapsed.Round(time.Millisecond), st.Versions, st.Resources, st.Bytes>>20, st.MaxBytes>>20, held>>20, st.Evicted)
	if st.Evicted == 0 {
		t.Fatalf("nothing evicted: the test did not exceed the budget (%d MiB recorded)", versionBytes>>20)
	}
	if limit := st.MaxBytes + st.MaxBytes/10; held > limit {
		t.Fatalf("heap held by the store %d MiB, over the budget + 10%% (%d MiB): the accounted overheads are too low", held>>20, limit>>20)
	}
	// The newest version of every resource is still there.
	if vs := s.Find(Query{Kind: "WorkloadEntry", Name: "shop/svc-09999.shop", Limit: 1}); len(vs) != 1 || !strings.Contains(vs[0].Diff, "+      version: v11") {
		t.Fatalf("newest version of the last resource: %+v", vs)
	}
	runtime.KeepAlive(s)
}

// Past the byte budget the past goes before the present: a resource that changed once long ago
// keeps its (current) version while a busy resource's old versions are evicted; a deleted
// resource's tombstone is not spared.
func TestStoreEvictsPastVersionsFirst(t *testing.T) {
	s := New(Options{Versions: 100, MaxBytes: 6 * (versionOverhead + 100 + resourceOverhead)})
	at := time.Unix(0, 0)
	body := strings.Repeat("x", 99) + "\n"
	s.Record(at, Cause{Trigger: "start"}, []Change{{Kind: "K", Namespace: "n", Name: "quiet", Content: Text(body)}, {Kind: "K", Namespace: "n", Name: "gone", Content: Text(body)}})
	s.Record(at, Cause{Trigger: "registry"}, []Change{{Kind: "K", Namespace: "n", Name: "gone", Deleted: true}})
	for i := range 20 {
		s.Record(at.Add(time.Duration(i+1)*time.Second), Cause{Trigger: "registry"}, []Change{{Kind: "K", Namespace: "n", Name: "busy", Content: Text(fmt.Sprintf("%s%d\n", body, i))}})
	}
	if st := s.Stats(); st.Bytes > st.MaxBytes || st.Evicted == 0 {
		t.Fatalf("stats %+v: want within the budget, with evictions", st)
	}
	if vs := s.Find(Query{Name: "quiet"}); len(vs) != 1 {
		t.Fatalf("the quiet resource's current version was evicted before the busy one's past: %+v", vs)
	}
	if vs := s.Find(Query{Name: "gone"}); len(vs) != 0 {
		t.Fatalf("the deleted resource's versions were spared: %+v", vs)
	}
	busy := s.Find(Query{Name: "busy"})
	if len(busy) == 0 || len(busy) >= 20 || !strings.HasSuffix(busy[0].Diff, "+19\n") {
		t.Fatalf("busy resource: %d versions, newest diff %q", len(busy), busy[0].Diff)
	}
	if len(s.timeline) != s.Stats().Versions {
		t.Fatalf("timeline has %d entries for %d live versions", len(s.timeline), s.Stats().Versions)
	}
}
