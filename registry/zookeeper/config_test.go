package zookeeper

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Servers: []string{"zk:2181"}}.WithDefaults()
	want := Config{Servers: []string{"zk:2181"}, SessionTimeout: 30 * time.Second, ReconnectBackoff: 500 * time.Millisecond,
		ReconnectBackoffMax: 30 * time.Second, ResyncInterval: 10 * time.Minute, DubboRoots: []string{"dubbo"},
		ServicesRoot: "/services", MappingRoot: "/dubbo/mapping", GovernanceRoot: "/dubbo/config/dubbo", Dubbo3Hosts: HostsBoth, ReadConcurrency: 64}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("WithDefaults\n got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		err  string // a substring naming the field; "" = valid
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, "servers: must not be empty"},
		{"bad port", func(c *Config) { c.Servers = []string{"zk:99999"} }, "servers[0]"},
		{"Java connect string with chroot", func(c *Config) { c.Servers = []string{"zk1:2181,zk2:2182/app"} }, ""},
		{"conflicting chroots", func(c *Config) { c.Servers = []string{"zk1/a"}; c.Chroot = "/b" }, "servers[0]"},
		{"bad chroot", func(c *Config) { c.Chroot = "app" }, "chroot"},
		{"both digest sources", func(c *Config) { c.Digest = registry.Secret{File: "f", Env: "E"} }, "digest"},
		{"short session", func(c *Config) { c.SessionTimeout = 100 * time.Millisecond }, "sessionTimeout"},
		{"backoff above max", func(c *Config) { c.ReconnectBackoff = time.Minute }, "reconnectBackoff"},
		{"resync too often", func(c *Config) { c.ResyncInterval = 10 * time.Millisecond }, "resyncInterval"},
		{"resync off", func(c *Config) { c.ResyncInterval = -1 }, ""},
		{"root is /", func(c *Config) { c.DubboRoots = []string{"/"} }, "dubboRoots[0]"},
		{"root twice", func(c *Config) { c.DubboRoots = []string{"dubbo", "/dubbo"} }, "dubboRoots[1]"},
		{"services root relative", func(c *Config) { c.ServicesRoot = "services" }, "servicesRoot"},
		{"services off", func(c *Config) { c.ServicesRoot = "-"; c.MappingRoot = "-" }, ""},
		{"mapping root is a Dubbo root", func(c *Config) { c.MappingRoot = "/dubbo" }, "mappingRoot"},
		{"governance off", func(c *Config) { c.GovernanceRoot = "-" }, ""},
		{"governance root relative", func(c *Config) { c.GovernanceRoot = "dubbo/config" }, "governanceRoot"},
		{"governance root is the mapping root", func(c *Config) { c.GovernanceRoot = "/dubbo/mapping" }, "governanceRoot"},
		{"unknown hosts mode", func(c *Config) { c.Dubbo3Hosts = "both-ways" }, "dubbo3Hosts"},
		{"concurrency", func(c *Config) { c.ReadConcurrency = -3 }, "readConcurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Servers: []string{"zk:2181"}}
			tt.mod(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want one mentioning %q", err, tt.err)
			}
		})
	}
}

func TestConfigConnectString(t *testing.T) {
	servers, chroot, err := Config{Servers: []string{"zk1:2181,zk2", "[::1]:2183/tenant/"}}.connect()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"zk1:2181", "zk2:2181", "[::1]:2183"}; !reflect.DeepEqual(servers, want) || chroot != "/tenant" {
		t.Errorf("got %v %q, want %v /tenant", servers, chroot, want)
	}
}

func TestDescribeChildMasksSecrets(t *testing.T) {
	name := zktest.JavaURLEncode("dubbo://10.0.0.1:20880/com.foo.Bar?token=abc123&application=x")
	got := describeChild("/dubbo/com.foo.Bar/providers", name)
	if strings.Contains(got, "abc123") || !strings.Contains(got, "token=***") {
		t.Errorf("describeChild = %q", got)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
servers: ["zk-0.zk:2181", "zk-1.zk:2181"]
chroot: /prod
digest: {file: /var/run/secrets/zk/digest}
sessionTimeout: 40s
reconnectBackoff: 250ms
reconnectBackoffMax: 1m
resyncInterval: 15m
dubboRoots: [dubbo, dubbo-gray]
servicesRoot: /services
mappingRoot: "-"
dubbo3Hosts: interface
readConcurrency: 32
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.SessionTimeout != 40*time.Second || c.ReconnectBackoffMax != time.Minute || c.Digest.File == "" || c.MappingRoot != "-" || len(c.DubboRoots) != 2 {
		t.Errorf("decoded %+v", c)
	}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Error(err)
	}
}
