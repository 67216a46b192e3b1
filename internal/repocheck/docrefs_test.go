package repocheck

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// TestDocReferencesResolve fails, with file:line, for every reference in the repository's .go,
// .md, .sh and .yaml files to a document that is not in the repository: a maintainer who clones
// it must be able to follow each one.
func TestDocReferencesResolve(t *testing.T) {
	root := servers.RepoRoot(t)
	problems, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
	if len(problems) > 0 {
		t.Logf("%d references do not resolve: point them at a document in the repository (docs/...), or add it", len(problems))
	}
}

// TestCheckFixture runs the check on a small tree holding each kind of reference, good and broken.
func TestCheckFixture(t *testing.T) {
	problems, err := Check(filepath.Join("testdata", "repo"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Ref))
	}
	b, err := os.ReadFile(filepath.Join("testdata", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "#") {
			want = append(want, line)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %q\nwant %q (testdata/want.txt)", got, want)
		for _, p := range problems {
			t.Logf("  %s", p)
		}
	}
}

func TestSlug(t *testing.T) {
	cases := []struct{ heading, want string }{
		{"Hosts", "hosts"},
		{"Istiod, kube-apiserver and etcd", "istiod-kube-apiserver-and-etcd"},
		{"The scale harness: bridge + real Istiod (issues 2 and 3)", "the-scale-harness-bridge--real-istiod-issues-2-and-3"},
		{"Several config sources, and `k8s://` with `xds://`", "several-config-sources-and-k8s-with-xds"},
		{"10,000 services × 10 instances", "10000-services--10-instances"},
		{"See [the docs](#x) now", "see-the-docs-now"},
		{"snake_case stays", "snake_case-stays"},
	}
	for _, c := range cases {
		if got := Slug(c.heading); got != c.want {
			t.Errorf("Slug(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

func TestAnchorsRepeatsAndFences(t *testing.T) {
	got := Anchors("# Top\n## Part\n## Part\n```\n# Code\n```\n### Part ###\n")
	for _, a := range []string{"top", "part", "part-1", "part-2"} {
		if !got[a] {
			t.Errorf("anchor #%s missing from %v", a, got)
		}
	}
	if got["code"] {
		t.Errorf("a heading inside a fenced block got an anchor: %v", got)
	}
}
