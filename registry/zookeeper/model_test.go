package zookeeper

import (
	"bytes"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

type goldenModel struct {
	Services      []*registry.Service  `yaml:"services"`
	Rejected      map[string]string    `yaml:"rejected"`
	Configurators []configuratorStatus `yaml:"configurators"`
	Routers       []routerStatus       `yaml:"routers"`
	Consumers     map[string][]string  `yaml:"consumers"`
}

// TestGoldenModel loads testdata/tree.txt (captured Dubbo 2, Dubbo 3 and Spring Cloud
// registrations, plus garbage) into a real ZooKeeper and compares what the adapter reports, in
// each Dubbo 3 host mode, with testdata/model-<mode>.golden.yaml (regenerate with -update and
// review the diff).
func TestGoldenModel(t *testing.T) {
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	writeTree(t, admin, "/golden", loadTree(t, filepath.Join("testdata", "tree.txt")))

	for _, mode := range []string{HostsBoth, HostsApp, HostsInterface} {
		t.Run(mode, func(t *testing.T) {
			r := startAdapter(t, Config{Servers: []string{z.Addr() + "/golden"}, Dubbo3Hosts: mode, ResyncInterval: -1})
			r.waitSynced(t)
			d := r.a.Describe()
			got := goldenModel{
				Services:      r.sink.Services(),
				Rejected:      r.rejects(),
				Configurators: d["configurators"].([]configuratorStatus),
				Routers:       d["routers"].([]routerStatus),
				Consumers:     d["consumers"].(map[string][]string),
			}
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, filepath.Join("testdata", "model-"+mode+".golden.yaml"), buf.Bytes())
			for _, s := range got.Services {
				if err := s.Validate(); err != nil {
					t.Errorf("invalid service sent: %v", err)
				}
			}
		})
	}
}
