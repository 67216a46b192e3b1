package nacos

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string // "" = valid
	}{
		{"minimal", func(c *Config) {}, ""},
		{"no servers", func(c *Config) { c.Servers = nil }, "servers: must not be empty"},
		{"bad server", func(c *Config) { c.Servers = []string{"h:0"} }, "servers[0]"},
		{"port defaults", func(c *Config) { c.Servers = []string{"nacos.example.com"} }, ""},
		{"flavor", func(c *Config) { c.Flavor = "eureka" }, "flavor:"},
		{"all namespaces", func(c *Config) { c.Namespaces = []string{All} }, ""},
		{"star mixed", func(c *Config) { c.Namespaces = []string{All, "dev"} }, "namespaces: [0]"},
		{"star on polaris", func(c *Config) { c.Flavor, c.Namespaces = FlavorPolaris, []string{All} }, "PolarisMesh"},
		{"duplicate group", func(c *Config) { c.Groups = []string{"A", "A"} }, "groups: [1]"},
		{"empty group", func(c *Config) { c.Groups = []string{""} }, "groups: [0]: must not be empty"},
		{"group with @", func(c *Config) { c.Groups = []string{"a@@b"} }, "groups: [0]"},
		{"bad include", func(c *Config) { c.Include = []string{"("} }, "include[0]"},
		{"bad exclude", func(c *Config) { c.Exclude = []string{"a", "[z-a]"} }, "exclude[1]"},
		{"fast poll", func(c *Config) { c.PollInterval = time.Millisecond }, "pollInterval"},
		{"page size", func(c *Config) { c.PageSize = 20000 }, "pageSize"},
		{"resync off", func(c *Config) { c.ResyncInterval = -1 }, ""},
		{"resync fast", func(c *Config) { c.ResyncInterval = time.Millisecond }, "resyncInterval"},
		{"username without password", func(c *Config) { c.Username = "nacos" }, "password: must be set"},
		{"password two sources", func(c *Config) { c.Username, c.Password = "nacos", registry.Secret{File: "/f", Env: "E"} }, "password: set either"},
		{"access key alone", func(c *Config) { c.AccessKey = registry.Secret{Env: "AK"} }, "accessKey"},
		{"cert without key", func(c *Config) { c.TLS = TLS{Enabled: true, CertFile: "/c"} }, "tls.certFile"},
		{"tls files without tls", func(c *Config) { c.TLS = TLS{CAFile: "/ca"} }, "tls.enabled"},
		{"relative cache dir", func(c *Config) { c.CacheDir = "cache" }, "cacheDir"},
		{"sdk log level", func(c *Config) { c.SDKLogLevel = "trace" }, "sdkLogLevel"},
		{"sdk debug log", func(c *Config) { c.SDKLogLevel = "debug" }, ""},
		{"sdk debug log with password", func(c *Config) {
			c.SDKLogLevel, c.Username, c.Password = "debug", "nacos", registry.Secret{Env: "PW"}
		}, "sdkLogLevel: debug"},
		{"sdk debug log with access key", func(c *Config) {
			c.SDKLogLevel, c.AccessKey, c.SecretKey = "debug", registry.Secret{Env: "AK"}, registry.Secret{Env: "SK"}
		}, "sdkLogLevel: debug"},
		{"sdk info log with access key", func(c *Config) {
			c.SDKLogLevel, c.AccessKey, c.SecretKey = "info", registry.Secret{Env: "AK"}, registry.Secret{Env: "SK"}
		}, ""},
		{"default protocol", func(c *Config) { c.DefaultProtocol = registry.ProtocolDubbo }, "defaultProtocol"},
		{"locality", func(c *Config) { c.Locality.Clusters = map[string]string{"HZ": "a/b/c/d"} }, "locality.clusters[HZ]"},
		{"dubbo3 hosts", func(c *Config) { c.Dubbo.Dubbo3Hosts = "all" }, "dubbo.dubbo3Hosts"},
		{"interface hosts need mapping", func(c *Config) { c.Dubbo.Dubbo3Hosts = HostsInterface }, "dubbo.mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Servers: []string{"127.0.0.1:8848"}}
			tc.mut(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Servers: []string{"n:8848"}}.WithDefaults()
	if c.Namespaces[0] != PublicNamespace || c.Groups[0] != DefaultGroup || c.PollInterval != 10*time.Second ||
		c.ResyncInterval != 10*time.Minute || c.DefaultProtocol != registry.ProtocolHTTP || c.Dubbo.MappingGroup != "mapping" ||
		c.Dubbo.Dubbo3Hosts != HostsBoth || c.GRPCPortOffset != 1000 || c.ContextPath != "/nacos" {
		t.Errorf("defaults: %+v", c)
	}
	if p := (Config{Flavor: FlavorPolaris}).WithDefaults(); p.ResyncInterval != time.Minute {
		t.Errorf("polaris resync default %v, want 1m", p.ResyncInterval)
	}
}

// TestConfigYAML: the block decodes from YAML as operators write it, durations included.
func TestConfigYAML(t *testing.T) {
	doc := `
servers: ["nacos-0.nacos:8848", "nacos-1.nacos:8848"]
namespaces: [public, dev]
groups: ["*"]
exclude: ["consumers:.*"]
pollInterval: 5s
username: nacos
password: {file: /etc/nacos/password}
tls: {enabled: true, caFile: /etc/nacos/ca.pem}
locality:
  clusters: {HZ: cn-hangzhou/cn-hangzhou-a}
dubbo: {mapping: true, dubbo3Hosts: app}
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PollInterval != 5*time.Second || c.Password.File != "/etc/nacos/password" || !c.Dubbo.Mapping || c.Locality.Clusters["HZ"] == "" {
		t.Errorf("decoded %+v", c)
	}
}
