package istio_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declaredOnce is what the repository spells in exactly one place. A string literal matching
// pattern may appear in a production .go file only in home; anywhere else it is a second
// definition that will drift from the first (as the collections of mcp, translate and static
// loading once did).
//
// The rule covers production code only. Test files (_test.go, testdata/) may restate the values:
// there a literal asserts a wire value (what Istiod sends, what a file holds) independently of
// the table, which is the point of the test. Separate modules (e2e/tools/) pin Istio itself and
// are out of scope. Add an entry to extend the rule (e.g. registry type names, home the registry
// table).
var declaredOnce = []struct {
	what    string
	pattern *regexp.Regexp
	home    []string
}{
	{
		what:    "an Istio collection (group/Kind)",
		pattern: regexp.MustCompile(`^(core|[a-z0-9-]+(\.[a-z0-9-]+)*\.istio\.io)/[A-Z][A-Za-z0-9]*$`),
		home:    []string{"istio/kinds.go"},
	},
	{
		what:    "an Istio type URL (group/version/Kind)",
		pattern: regexp.MustCompile(`^(core|[a-z0-9-]+(\.[a-z0-9-]+)*\.istio\.io)/v[0-9]+((alpha|beta)[0-9]+)?/[A-Z][A-Za-z0-9]*$`),
		home:    []string{"istio/kinds.go"},
	},
	{
		what:    "an Istio proto type URL",
		pattern: regexp.MustCompile(`^type\.googleapis\.com/istio\.`),
		home:    []string{"istio/kinds.go"},
	},
	{
		// The pieces a collection or type URL is built from: "networking.istio.io",
		// "security.istio.io/", "networking.istio.io/v1". Label and annotation keys of Istio
		// ("security.istio.io/tlsMode", "internal.istio.io/...") are not API groups.
		what:    "an Istio API group",
		pattern: regexp.MustCompile(`^(networking|security|telemetry|extensions)\.istio\.io(/(v[0-9]+((alpha|beta)[0-9]+)?/?)?)?$`),
		home:    []string{"istio/kinds.go"},
	},
}

// TestDefinedOnce fails when a value of declaredOnce is spelled as a string literal in a
// production file other than its home.
func TestDefinedOnce(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "*.go").Output()
	if err != nil {
		t.Skipf("git ls-files: %v (not a git checkout)", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasSuffix(f, "_test.go") || strings.Contains("/"+f, "/testdata/") || strings.HasPrefix(f, "e2e/tools/") {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found")
	}
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, d := range declaredOnce {
				if d.pattern.MatchString(s) && !slices.Contains(d.home, f) {
					t.Errorf("%s: %q is %s, defined only in %s: use the constant from there",
						fset.Position(lit.Pos()), s, d.what, strings.Join(d.home, ", "))
				}
			}
			return true
		})
	}
}

// TestDefinedOncePatterns keeps the patterns honest: each catches what it is for and lets
// Istio's label and annotation keys through.
func TestDefinedOncePatterns(t *testing.T) {
	for _, tc := range []struct {
		lit  string
		want bool
	}{
		{"networking.istio.io/ServiceEntry", true},
		{"security.istio.io/AuthorizationPolicy", true},
		{"core/MeshConfig", true},
		{"networking.istio.io/v1/ServiceEntry", true},
		{"networking.istio.io/v1alpha3/ServiceEntry", true},
		{"core/v1alpha1/MeshConfig", true},
		{"type.googleapis.com/istio.networking.v1alpha3.ServiceEntry", true},
		{"type.googleapis.com/istio.mcp.v1alpha1.Resource", true},
		{"networking.istio.io", true},
		{"security.istio.io/", true},
		{"networking.istio.io/v1", true},
		{"security.istio.io/tlsMode", false},
		{"internal.istio.io/", false},
		{"istio.io/dry-run", false},
		{"type.googleapis.com/envoy.config.cluster.v3.Cluster", false},
		{"type.googleapis.com/", false},
	} {
		got := false
		for _, d := range declaredOnce {
			got = got || d.pattern.MatchString(tc.lit)
		}
		if got != tc.want {
			t.Errorf("%q matched = %v, want %v", tc.lit, got, tc.want)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
