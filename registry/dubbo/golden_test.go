package dubbo

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

// fixtureURLs reads testdata/provider_urls.txt: one URL or znode name per line, '#' comments.
func fixtureURLs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "provider_urls.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

type goldenEntry struct {
	Input    string             `yaml:"input"`
	Key      *ServiceKey        `yaml:"key,omitempty"`
	Port     *registry.Port     `yaml:"port,omitempty"`
	Instance *registry.Instance `yaml:"instance,omitempty"`
	Reason   string             `yaml:"reason,omitempty"`
	Error    string             `yaml:"error,omitempty"`
}

// parseFixture parses a fixture line as the ZooKeeper adapter does: encoded znode names (they
// contain no "://") are decoded first.
func parseFixture(line string) (*URL, error) {
	if !strings.Contains(line, "://") {
		return ParseZNodeName(line)
	}
	return ParseURL(line)
}

// TestProviderFixturesGolden maps every captured provider URL to the model and compares with
// testdata/provider_urls.golden.yaml (regenerate with -update, then review the diff).
func TestProviderFixturesGolden(t *testing.T) {
	var out []goldenEntry
	for _, line := range fixtureURLs(t) {
		e := goldenEntry{Input: truncate(line, 100)}
		u, err := parseFixture(line)
		if err == nil {
			var p Provider
			if p, err = NewProvider(u); err == nil {
				e.Key, e.Port, e.Instance = &p.Key, &p.Ports[0], &p.Instance
			}
		}
		if err != nil {
			e.Reason, e.Error = Reason(err), err.Error()
		}
		out = append(out, e)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, filepath.Join("testdata", "provider_urls.golden.yaml"), buf.Bytes())
}
