package repocheck

import (
	"os"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/mcp-bridge/mcp-bridge/registry/registries"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// registryTypeNames are the registry types the bridge has or is about to have, and every one in
// the table.
func registryTypeNames() []string {
	names := []string{"file", "zookeeper", "nacos", "consul", "eureka"}
	for _, n := range registries.Names() {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Constants that look like a registry type but are not one.
var notRegistryTypes = []string{
	"internal/benchestate.RegistryNacos", // the configured name of the fixture estate's Nacos registry
}

// TestRegistryTypesDefinedOnce fails for a registry type declared as a constant outside the
// registry table (registry/registries).
func TestRegistryTypesDefinedOnce(t *testing.T) {
	root := servers.RepoRoot(t)
	problems, err := RegistryTypeConstants(os.DirFS(root), "registry/registries", registryTypeNames(), notRegistryTypes)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
}

func TestRegistryTypeConstantsFixture(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int // problems found
	}{
		{"type constant", "package config\nconst TypeZooKeeper = \"zookeeper\"\n", 1},
		{"grouped, typed", "package translate\nconst (\n\tRegistryFile string = \"file\"\n\tRegistryEureka = \"eureka\"\n)\n", 2},
		{"lower-case name", "package x\nconst consulType = \"consul\"\n", 1},
		{"same value, not a type", "package nacos\nconst FlavorNacos = \"nacos\"\n", 0},
		{"not a registry type", "package x\nconst TypeJSON = \"json\"\n", 0},
		{"a variable", "package x\nvar TypeNacos = \"nacos\"\n", 0},
		{"allowed", "package benchestate\nconst RegistryNacos = \"nacos\"\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"internal/benchestate/x.go":    {Data: []byte(tc.src)},
				"registry/registries/table.go": {Data: []byte("package registries\nconst TypeFile = \"file\"\n")},
				"registry/file/testdata/x.go":  {Data: []byte("package x\nconst TypeFile = \"file\"\n")},
			}
			problems, err := RegistryTypeConstants(fsys, "registry/registries", registryTypeNames(), notRegistryTypes)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != tc.want {
				t.Errorf("found %v, want %d problems", problems, tc.want)
			}
		})
	}
}
