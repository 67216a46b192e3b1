package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder stands in for a test so that Compare's failures can be inspected.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(f string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(f, args...))
}
func (r *recorder) Fatalf(f string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(f, args...))
}

func TestCompare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.golden")
	if err := os.WriteFile(path, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, got string
		want            []string // substrings of the single failure; nil: passes
	}{
		{"equal", path, "a\nb\nc\n", nil},
		{"one line differs", path, "a\nB\nc\n", []string{"line 2:\n- b\n+ B\n", "-update"}},
		{"a line more", path, "a\nb\nc\nd\n", []string{"line 4:\n- \n+ d\n"}},
		{"no golden file", path + ".missing", "a\n", []string{"no such file", "-update to create it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Compare(r, tt.path, []byte(tt.got))
			if tt.want == nil {
				if len(r.failures) != 0 {
					t.Fatalf("failed: %v", r.failures)
				}
				return
			}
			if len(r.failures) != 1 {
				t.Fatalf("%d failures %q, want 1", len(r.failures), r.failures)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.failures[0], w) {
					t.Errorf("failure %q does not say %q", r.failures[0], w)
				}
			}
		})
	}
}

func TestLineDiffStopsAfterTen(t *testing.T) {
	want := strings.Repeat("x\n", 20)
	got := strings.Repeat("y\n", 20)
	d := LineDiff([]byte(want), []byte(got))
	if n := strings.Count(d, "line "); n != 10 {
		t.Errorf("%d lines shown, want 10:\n%s", n, d)
	}
	if !strings.HasSuffix(d, "...\n") {
		t.Errorf("a cut diff does not say so:\n%s", d)
	}
}
