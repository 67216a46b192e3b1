package repocheck

import (
	"os"
	"testing"
	"testing/fstest"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

const module = "github.com/mcp-bridge/mcp-bridge"

// TestNoProductionImportOfE2E fails for a non-test package that imports e2e/... .
func TestNoProductionImportOfE2E(t *testing.T) {
	root := servers.RepoRoot(t)
	problems, err := E2EImports(os.DirFS(root), module)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
}

func TestE2EImportsFixture(t *testing.T) {
	imp := func(pkg, path string) []byte { return []byte("package " + pkg + "\nimport _ \"" + path + "\"\n") }
	tests := []struct {
		name string
		file string
		src  []byte
		want int
	}{
		{"helper package importing e2e/servers", "registry/zookeeper/zktest/zktest.go", imp("zktest", module+"/e2e/servers"), 1},
		{"a test file may", "registry/zookeeper/live_test.go", imp("zookeeper", module+"/e2e/servers"), 0},
		{"e2e itself may", "e2e/zktest/zktest.go", imp("zktest", module+"/e2e/servers"), 0},
		{"a look-alike path", "registry/x/x.go", imp("x", module+"/e2etools"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problems, err := E2EImports(fstest.MapFS{tc.file: {Data: tc.src}}, module)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != tc.want {
				t.Errorf("found %v, want %d problems", problems, tc.want)
			}
		})
	}
}
