package pipeline

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// parse builds a validated configuration from YAML.
func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, doc)
	}
	return c
}

const baseConfig = `
registries:
  - name: zk
    type: zookeeper
    zookeeper: {servers: ["127.0.0.1:2181"]}
  - name: files
    type: file
    file: {path: /tmp/services.yaml}
`

func TestDiff(t *testing.T) {
	tests := []struct {
		name  string
		next  string
		want  Plan
		empty bool
	}{
		{name: "identical", next: baseConfig, want: Plan{Unchanged: []string{"zk", "files"}}, empty: true},
		{name: "adapter block changed", next: `
registries:
  - name: zk
    type: zookeeper
    zookeeper: {servers: ["127.0.0.1:2181"], resyncInterval: 1m}
  - name: files
    type: file
    file: {path: /tmp/services.yaml}
`, want: Plan{Unchanged: []string{"files"}, Changed: []string{"zk"}}},
		{name: "namespace only: translate, adapter untouched", next: `
registries:
  - name: zk
    type: zookeeper
    namespace: dubbo
    zookeeper: {servers: ["127.0.0.1:2181"]}
  - name: files
    type: file
    file: {path: /tmp/services.yaml}
`, want: Plan{Unchanged: []string{"zk", "files"}, Translate: true}},
		{name: "added and removed", next: `
registries:
  - name: zk
    type: zookeeper
    zookeeper: {servers: ["127.0.0.1:2181"]}
  - name: more
    type: file
    file: {path: /tmp/more.yaml}
`, want: Plan{Unchanged: []string{"zk"}, Added: []string{"more"}, Removed: []string{"files"}, Translate: true}},
		{name: "removed only: no new translator", next: `
registries:
  - name: zk
    type: zookeeper
    zookeeper: {servers: ["127.0.0.1:2181"]}
`, want: Plan{Unchanged: []string{"zk"}, Removed: []string{"files"}}},
		{name: "translate option", next: baseConfig + `
translate: {endpointMode: workloadEntry}
`, want: Plan{Unchanged: []string{"zk", "files"}, Translate: true}},
		{name: "needs restart: listeners, log, state, merge policies, vipCIDR", next: baseConfig + `
mcp: {address: ":19000"}
admin: {address: "127.0.0.1:19001"}
log: {level: debug}
state: {file: /tmp/state.json.gz}
debounce: {quiet: 1s}
protection: {maxDropRatio: 0.9}
translate: {vipCIDR: 240.128.0.0/10}
`, want: Plan{Unchanged: []string{"zk", "files"}, NeedsRestart: []string{"mcp.address", "admin", "log", "state", "debounce", "protection", "translate.vipCIDR"}}, empty: true},
		{name: "needs restart: the shard count (listeners, and Istiod's configSources)", next: baseConfig + `
mcp: {shards: 3}
admin: {address: "127.0.0.1:19001"}
`, want: Plan{Unchanged: []string{"zk", "files"}, NeedsRestart: []string{"mcp.shards", "admin"}}, empty: true},
		{name: "needs restart: the shard list", next: baseConfig + `
mcp: {shardAddresses: [":19000", ":19010"]}
`, want: Plan{Unchanged: []string{"zk", "files"}, NeedsRestart: []string{"mcp.shards"}}, empty: true},
		{name: "order of kept registries is the duplicates priority", next: `
registries:
  - name: files
    type: file
    file: {path: /tmp/services.yaml}
  - name: zk
    type: zookeeper
    zookeeper: {servers: ["127.0.0.1:2181"]}
`, want: Plan{Unchanged: []string{"files", "zk"}, NeedsRestart: []string{"registries (order: the duplicates priority)"}}, empty: true},
	}
	old := parse(t, baseConfig)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(old, parse(t, tt.next))
			for _, f := range []struct {
				what      string
				got, want []string
			}{
				{"unchanged", got.Unchanged, tt.want.Unchanged},
				{"changed", got.Changed, tt.want.Changed},
				{"added", got.Added, tt.want.Added},
				{"removed", got.Removed, tt.want.Removed},
				{"needsRestart", got.NeedsRestart, tt.want.NeedsRestart},
			} {
				if !slices.Equal(f.got, f.want) {
					t.Errorf("%s = %q, want %q", f.what, f.got, f.want)
				}
			}
			if got.Translate != tt.want.Translate {
				t.Errorf("translate = %v, want %v", got.Translate, tt.want.Translate)
			}
			if got.Empty() != tt.empty {
				t.Errorf("Empty() = %v, want %v", got.Empty(), tt.empty)
			}
		})
	}
}

// The running configuration on /debug/config never shows a credential value: references to
// secrets are shown, plain values under sensitive keys and URL user info are masked.
func TestMasked(t *testing.T) {
	c := parse(t, `
registries:
  - name: nacos
    type: nacos
    nacos:
      servers: ["nacos:8848"]
      username: bridge
      password: {file: /etc/mcp-bridge/nacos-password}
`)
	nc := c.Registries[0].Config.(*nacos.Config)
	nc.AccessKey = registry.Secret{Env: "NACOS_AK"}
	// No option takes a URL today; one with user info would be masked.
	nc.Servers = []string{"http://bridge:hunter2@nacos:8848"}
	got := masked(c)
	b := mustYAML(t, got)
	for _, want := range []string{"/etc/mcp-bridge/nacos-password", "NACOS_AK", "username: bridge", "http://<masked>@nacos:8848"} {
		if !contains(b, want) {
			t.Errorf("masked config lacks %q:\n%s", want, b)
		}
	}
	if contains(b, "hunter2") {
		t.Errorf("masked config shows a credential:\n%s", b)
	}
	// A plain value under a sensitive key (a future option, a mistake) is masked too.
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("a: {password: plain, token: t0k, digest: {file: /d}, name: x}"), &n); err != nil {
		t.Fatal(err)
	}
	maskNode(&n, false)
	out, err := yaml.Marshal(&n)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"plain", "t0k"} {
		if contains(string(out), bad) {
			t.Errorf("masked YAML shows %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"file: /d", "name: x"} {
		if !contains(string(out), want) {
			t.Errorf("masked YAML lacks %q:\n%s", want, out)
		}
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
