package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: any bytes given as a configuration decode without panicking, to the same result
// (or the same error) every time, within the bounds of bounds.go. Seeds: the documented example
// configuration and documents from this package's tests.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		fileRegistry,
		fileRegistry + "staticResources: &x [a, *x]\n",
		fileRegistry + "translate:\n  dropLabels: &l [a, b]\nstaticResources: *l\n",
		"registries:\n- name: z\n  type: zookeeper\n  zookeeper:\n    servers: [127.0.0.1:2181]\n    digest: {env: X}\n",
		"registries:\n- name: n\n  type: nacos\n  nacos:\n    servers: [x:8848]\n    username: u\n    password: {file: /p}\n",
		"mcp:\n  address: :1\n  address: :2\n" + fileRegistry,
		"registries:\n\t- name: a\n",
		"debounce:\n  quiet: 5q\n" + fileRegistry,
		"- a\n- b\n",
		fileRegistry + "---\n" + fileRegistry,
		"registries: [{name: a, type: file, hosts: {application: '{{.Name}}.x'}}]\n<<: {log: {level: debug}}\n",
		"mcp: {address: '10.0.0.1:65530', shards: 6}\n" + fileRegistry,
		"mcp: {shards: 2, shardAddresses: [':1', '[::1]:2']}\n" + fileRegistry,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c1, err1 := Parse(doc)
		c2, err2 := Parse(doc)
		if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
			t.Fatalf("two parses differ: %v and %v", err1, err2)
		}
		if err1 != nil {
			if err1.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("two parses differ:\n%+v\n%+v", c1, c2)
		}
		if len(c1.Registries) == 0 {
			t.Fatal("accepted without registries")
		}
		if n := len(c1.MCP.Addresses()); n != c1.MCP.Shards || n < 1 || n > MaxShards {
			t.Fatalf("accepted mcp.shards %d with %d listener addresses", c1.MCP.Shards, n)
		}
	})
}
