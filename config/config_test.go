package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/file"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
	"github.com/mcp-bridge/mcp-bridge/registry/zookeeper"
)

// A registry block that is valid on its own, to append to documents testing something else.
const fileRegistry = "registries:\n- name: a\n  type: file\n"

func TestParseRejectsMalformedConfig(t *testing.T) {
	dir := t.TempDir()
	certOnly := filepath.Join(dir, "only.crt")
	if err := os.WriteFile(certOnly, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		// want are substrings the error must contain: the line, the YAML path and what is wrong.
		want []string
	}{
		{"empty file", "", []string{"empty", "at least one registry"}},
		{"only whitespace", "\n  \n", []string{"empty"}},
		{"tab indentation", "registries:\n\t- name: a\n", []string{"line 2", "tab"}},
		{"broken YAML", "registries: [\n", []string{"not valid YAML"}},
		{"a list at the top", "- a\n- b\n", []string{"line 1", "mapping of sections"}},
		{"two documents", fileRegistry + "---\n" + fileRegistry, []string{"more than one YAML document"}},
		{"unknown top-level field", fileRegistry + "registry: x\n", []string{"line 4", `unknown field "registry"`, "valid fields:", "registries"}},
		{"unknown nested field", "registries:\n- name: a\n  type: file\n  file:\n    path: x\n    paht: y\n", []string{"line 6", `unknown field "paht"`, "registries[0].file", "path, pollInterval"}},
		{"unknown field in a registry entry", fileRegistry + "  typo: x\n", []string{"line 4", `unknown field "typo" in registries[0]`, "valid fields: consul, eureka, file, hosts, nacos, name, namespace, type, zookeeper"}},
		{"unknown field in a zookeeper block", "registries:\n- name: a\n  type: zookeeper\n  zookeeper:\n    servers: [zk:2181]\n    sever: x\n", []string{"line 6", `unknown field "sever" in registries[0].zookeeper`, "servers"}},
		{"unknown field deep in a nacos block", "registries:\n- name: a\n  type: nacos\n  nacos:\n    servers: [n:8848]\n    tls: {enabled: true, caFlie: x}\n", []string{"line 6", `unknown field "caFlie"`, "caFile"}},
		{"duplicated key in a registry block", "registries:\n- name: a\n  type: zookeeper\n  zookeeper:\n    servers: [zk:2181]\n    servers: [zk:2182]\n", []string{"line 6", `"servers" already defined at line 5`}},
		{"wrong type in a registry block", "registries:\n- name: a\n  type: file\n  file:\n    pollInterval: [1]\n", []string{"line 5", "registries[0].file.pollInterval"}},
		{"unknown field in mcp", "mcp:\n  adress: :1\n" + fileRegistry, []string{"line 2", `unknown field "adress" in mcp`, "address"}},
		{"duplicated key", "mcp:\n  address: :1\n  address: :2\n" + fileRegistry, []string{"line 3", `"address" already defined at line 2`}},
		{"wrong type for a section", "mcp: [1]\n" + fileRegistry, []string{"line 1", "mcp", "list"}},
		{"bad duration", "debounce:\n  quiet: 5q\n" + fileRegistry, []string{"line 2", "debounce.quiet", "5q"}},
		{"negative duration", "debounce:\n  quiet: -1s\n" + fileRegistry, []string{"line 2", "debounce.quiet", "negative"}},
		{"fillIstiodBuffer not a boolean", "mcp:\n  fillIstiodBuffer: sometimes\n" + fileRegistry, []string{"line 2", "mcp.fillIstiodBuffer", "sometimes"}},
		{"unknown pacing mode", "mcp:\n  pacing: {mode: fast}\n" + fileRegistry, []string{"mcp.pacing.mode", `"fast" is not digest or ack`}},
		{"unknown debounce edge", "debounce:\n  edge: rising\n" + fileRegistry, []string{"debounce.edge", `"rising" is not leading or trailing`}},
		{"number where a string list is", "staticResources: 3\n" + fileRegistry, []string{"line 1", "staticResources"}},
		{"no registries", "mcp:\n  address: :1\n", []string{"registries", "at least one registry"}},
		{"registry without name", "registries:\n- type: file\n", []string{"line 2", "registries[0].name", "required"}},
		{"registry name not a DNS label", "registries:\n- name: My_Registry\n  type: file\n", []string{"line 2", "registries[0].name", "DNS label"}},
		{"duplicate registry names", fileRegistry + "- name: a\n  type: file\n", []string{"line 4", "registries[1].name", "already the name of registries[0]"}},
		{"registry without type", "registries:\n- name: a\n", []string{"registries[0].type", "required", "file, zookeeper, nacos"}},
		{"unknown registry type", "registries:\n- name: a\n  type: eurka\n", []string{"line 3", "registries[0].type", `"eurka" is not a known registry type`}},
		{"block of another type", "registries:\n- name: a\n  type: file\n  nacos:\n    servers: [x:8848]\n", []string{"line 4", "registries[0].nacos", `does not match type "file"`}},
		{"zookeeper without its block", "registries:\n- name: a\n  type: zookeeper\n", []string{"registries[0].zookeeper", `required for type "zookeeper"`}},
		{"zookeeper without servers", "registries:\n- name: a\n  type: zookeeper\n  zookeeper: {}\n", []string{"line 4", "registries[0].zookeeper.servers"}},
		{"nacos without servers", "registries:\n- name: a\n  type: nacos\n  nacos: {}\n", []string{"line 4", "registries[0].nacos.servers"}},
		{"bad output namespace", "registries:\n- name: a\n  type: file\n  namespace: Not_OK\n", []string{"line 4", "registries[0].namespace", "namespace name"}},
		{"bad host template", "registries:\n- name: a\n  type: file\n  hosts:\n    application: '{{.Nope'\n", []string{"line 5", "registries[0].hosts.application"}},
		{"template with a missing field", "registries:\n- name: a\n  type: file\n  hosts:\n    application: '{{.Missing}}.x'\n", []string{"registries[0].hosts.application", "Missing"}},
		{"address without port", "mcp:\n  address: localhost\n" + fileRegistry, []string{"line 2", "mcp.address", "host:port"}},
		{"port out of range", "admin:\n  address: 127.0.0.1:70000\n" + fileRegistry, []string{"line 2", "admin.address", "70000"}},
		{"TLS with only a certificate", "mcp:\n  tls:\n    certFile: x.crt\n" + fileRegistry, []string{"line 2", "mcp.tls", "certFile and keyFile must both be set"}},
		{"TLS files that do not load", "mcp:\n  tls:\n    certFile: " + certOnly + "\n    keyFile: " + filepath.Join(dir, "missing.key") + "\n" + fileRegistry, []string{"line 2", "mcp.tls", "loading certificate"}},
		{"negative MCP limit", "mcp:\n  limits:\n    maxStreams: -1\n" + fileRegistry, []string{"line 3", "mcp.limits.maxStreams", "negative"}},
		{"MCP receive limit too small for Istiod", "mcp:\n  limits:\n    maxRecvMessageBytes: 1024\n" + fileRegistry, []string{"line 3", "mcp.limits.maxRecvMessageBytes", "below 65536"}},
		{"per-peer streams above the total", "mcp:\n  limits:\n    maxStreams: 4\n    maxStreamsPerPeer: 8\n" + fileRegistry, []string{"line 4", "mcp.limits.maxStreamsPerPeer", "above maxStreams"}},
		{"too many shards", "mcp:\n  shards: 65\n" + fileRegistry, []string{"line 2", "mcp.shards", "65 is not from 1 to 64"}},
		{"negative shards", "mcp:\n  shards: -2\n" + fileRegistry, []string{"line 2", "mcp.shards", "-2 is not from 1 to 64"}},
		{"shards past the last port", "mcp:\n  address: :65534\n  shards: 3\n" + fileRegistry, []string{"line 3", "mcp.shards", "past port 65535"}},
		{"shards disagree with the address list", "mcp:\n  shards: 3\n  shardAddresses: [':1', ':2']\n" + fileRegistry, []string{"line 2", "mcp.shards", "disagrees with the 2 entries"}},
		{"bad shard address", "mcp:\n  shardAddresses:\n  - :1\n  - nope\n" + fileRegistry, []string{"line 4", "mcp.shardAddresses[1]", "host:port"}},
		{"two shards on one address", "mcp:\n  shardAddresses: [':7001', ':7001']\n" + fileRegistry, []string{"mcp.shardAddresses[1]", "shard 0's address"}},
		{"negative send timeout", "mcp:\n  limits:\n    sendTimeout: -1s\n" + fileRegistry, []string{"line 3", "mcp.limits.sendTimeout", "negative"}},
		{"bad log level", "log:\n  level: verbose\n" + fileRegistry, []string{"line 2", "log.level", "verbose"}},
		{"bad log format", "log:\n  format: xml\n" + fileRegistry, []string{"line 2", "log.format", "xml"}},
		{"drop ratio above 1", "protection:\n  maxDropRatio: 2\n" + fileRegistry, []string{"line 2", "protection.maxDropRatio"}},
		{"unknown duplicate mode", "duplicates:\n  mode: union\n" + fileRegistry, []string{"line 2", "duplicates.mode", "union"}},
		{"prefer names an unknown registry", "duplicates:\n  mode: prefer\n  prefer: [b]\n" + fileRegistry, []string{"line 3", "duplicates.prefer", `"b" is not a configured registry`}},
		{"bad endpoint mode", "translate:\n  endpointMode: sidecar\n" + fileRegistry, []string{"line 2", "translate.endpointMode", "sidecar"}},
		{"bad VIP CIDR", "translate:\n  vipCIDR: 10.0.0.0\n" + fileRegistry, []string{"line 2", "translate.vipCIDR"}},
		{"VIP CIDR overlapping Istio's", "translate:\n  vipCIDR: 240.240.0.0/16\n" + fileRegistry, []string{"line 2", "translate.vipCIDR"}},
		{"bad label mode", "translate:\n  labels:\n    mode: lean\n" + fileRegistry, []string{"line 3", "translate.labels.mode", "lean"}},
		{"dropLabels with labels.drop", "translate:\n  labels:\n    drop: [pid]\n  dropLabels: [pid]\n" + fileRegistry, []string{"line 4", "translate.dropLabels", "alias of labels.drop"}},
		{"unknown protocol in servicePorts", "translate:\n  servicePorts:\n    thrift: 9090\n" + fileRegistry, []string{"translate.servicePorts", "thrift"}},
		{"state file is a directory", "state:\n  file: " + dir + "\n" + fileRegistry, []string{"line 2", "state.file", "is a directory"}},
		{"negative state interval", "state:\n  file: /var/lib/mcp-bridge/state.json.gz\n  interval: -5s\n" + fileRegistry, []string{"line 3", "state.interval", "negative"}},
		{"negative drain grace", "rules:\n  drainGrace: -1s\n" + fileRegistry, []string{"line 2", "rules.drainGrace", "out of range"}},
		{"unknown field in state", "state:\n  path: /x\n" + fileRegistry, []string{"line 2", `unknown field "path" in state`, "file, interval"}},
		{"translate registries set by hand", "translate:\n  registries:\n  - name: a\n" + fileRegistry, []string{"line 2", "translate.registries", "in its entry under registries"}},
		{"missing static resource file", "staticResources: [/nonexistent/vs.yaml]\n" + fileRegistry, []string{"line 1", "staticResources[0]", "/nonexistent/vs.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseReportsEveryProblemOnce(t *testing.T) {
	doc := "mcp:\n  address: nope\nlog:\n  level: loud\nregistries:\n- name: Bad_Name\n  type: file\n"
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per problem (address, level, name), got %d:\n%v", len(lines), err)
	}
	for i, want := range []string{"line 2: mcp.address", "line 4: log.level", "line 6: registries[0].name"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(fileRegistry))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"mcp.address", c.MCP.Address, ":18848"},
		{"admin.address (loopback: not exposed by default)", c.Admin.Address, "127.0.0.1:18849"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"registry namespace defaults to its name", c.Registries[0].Namespace, "a"},
		{"file registry block created", c.Registries[0].Config != nil, true},
		{"debounce.quiet", c.Debounce.Quiet, 100 * time.Millisecond},
		{"mcp.pacing.mode (wait for Istiod to digest a push)", string(c.MCP.Pacing.Mode), "digest"},
		{"mcp.pacing.metricsPort (Istiod's monitoring port)", c.MCP.Pacing.MetricsPort, 15014},
		{"mcp.fillIstiodBuffer (Istiod keeps empty responses, not ours)", *c.MCP.FillIstiodBuffer, true},
		{"debounce.edge (an isolated change goes out at once)", string(c.Debounce.Edge), "leading"},
		{"translate.endpointMode", c.Translate.EndpointMode, "inline"},
		{"translate.labels.mode", c.Translate.Labels.Mode, "routing"},
		{"translate registries follow the registry list", len(c.Translate.Registries), 1},
		{"state.file (off: no path is right everywhere)", c.State.File, ""},
		{"state.interval", c.State.Interval, 5 * time.Second},
		{"mcp.limits.maxRecvMessageBytes (Istiod's requests are tiny)", c.MCP.Limits.MaxRecvMessageBytes, 4 << 20},
		{"mcp.limits.maxStreamsPerPeer", c.MCP.Limits.MaxStreamsPerPeer, 16},
		{"mcp.limits.sendTimeout", c.MCP.Limits.SendTimeout, 2 * time.Minute},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func TestDefaultServesTheEmbeddedExample(t *testing.T) {
	c := Default()
	if len(c.Registries) != 1 || c.Registries[0].Type != "file" || !reflect.DeepEqual(c.Registries[0].Config, ptr(file.Config{}.WithDefaults())) {
		t.Fatalf("default registries = %+v, want one file registry with no path (the embedded example)", c.Registries)
	}
	if errs := c.validate(); len(errs) > 0 {
		t.Fatalf("the default configuration does not validate: %v", errs.withLines(nil))
	}
}

// The annotated example documents every option: it must parse, and every field the
// configuration accepts must appear in it.
func TestExampleDocumentsEveryOption(t *testing.T) {
	path := filepath.Join("..", "deploy", "examples", "config.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("%s is not a valid configuration: %v", path, err)
	}
	text := string(b)
	for typ, fields := range knownFields(reflect.TypeFor[Config]()) {
		for _, f := range fields {
			if !strings.Contains(text, f+":") {
				t.Errorf("%s does not document %s field %q", path, typ, f)
			}
		}
	}
}

// A registry entry's block decodes into the adapter package's own Config, defaulted, and writes back
// in the same YAML shape; two decodings of one document are DeepEqual (a reload compares blocks).
func TestRegistryBlocksRoundTrip(t *testing.T) {
	doc := []byte(`registries:
- name: zk
  type: zookeeper
  zookeeper: {servers: [zk:2181], digest: {env: ZK_DIGEST}}
- name: nc
  type: nacos
  nacos: {servers: [nacos:8848], username: u, password: {file: /run/pw}}
- name: ex
  type: file
`)
	c, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	zkc, ok := c.Registries[0].Config.(*zookeeper.Config)
	if !ok || zkc.Servers[0] != "zk:2181" || zkc.SessionTimeout != 30*time.Second {
		t.Errorf("zookeeper block = %#v, want *zookeeper.Config with servers and defaults", c.Registries[0].Config)
	}
	if _, ok := c.Registries[1].Config.(*nacos.Config); !ok {
		t.Errorf("nacos block = %T", c.Registries[1].Config)
	}
	again, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Registries, again.Registries) {
		t.Error("two decodings of one document differ")
	}
	out, err := yaml.Marshal(c.Registries)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(append([]byte("registries:\n"), indent(out)...))
	if err != nil {
		t.Fatalf("marshalled registries do not parse: %v\n%s", err, out)
	}
	// Compared as YAML: an empty list written out comes back as an empty, not a nil, slice.
	if again, err := yaml.Marshal(back.Registries); err != nil || string(again) != string(out) {
		t.Errorf("round trip changed the registries (%v):\n%s\nthen:\n%s", err, out, again)
	}
	if !strings.Contains(string(out), "  zookeeper:\n") || !strings.Contains(string(out), "  nacos:\n") {
		t.Errorf("blocks are not written under their type's key:\n%s", out)
	}
	want := map[string]registry.Secret{
		"registries[0].zookeeper.digest": {Env: "ZK_DIGEST"},
		"registries[1].nacos.password":   {File: "/run/pw"},
	}
	if got := c.Secrets(); !reflect.DeepEqual(got, want) {
		t.Errorf("Secrets() = %v, want %v", got, want)
	}
}

func indent(b []byte) []byte {
	return []byte("  " + strings.ReplaceAll(strings.TrimRight(string(b), "\n"), "\n", "\n  ") + "\n")
}

func ptr[T any](v T) *T { return &v }

// TestDrainGrace: rules.drainGrace reaches the bridge as its options mean it: absent is the
// default (0 to the bridge), 0 turns staging off (negative to the bridge), a duration is itself.
func TestDrainGrace(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
	}{
		{"", 0},
		{"rules:\n  drainGrace: 0s\n", -1},
		{"rules:\n  drainGrace: 2500ms\n", 2500 * time.Millisecond},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml + fileRegistry))
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if got := c.Rules.BridgeDrainGrace(); got != tt.want {
			t.Errorf("%q: bridge drain grace %v, want %v", tt.yaml, got, tt.want)
		}
	}
}
