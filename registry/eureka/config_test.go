package eureka

import (
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no servers", func(c *Config) { c.Servers = nil }, "servers: must not be empty"},
		{"not a url", func(c *Config) { c.Servers = []string{"eureka:8761"} }, "servers[0]"},
		{"credentials in url", func(c *Config) { c.Servers = []string{"http://u:secret@eureka:8761/eureka"} }, "must not contain credentials"},
		{"username without password", func(c *Config) { c.Username = "u" }, "password: must be set"},
		{"password without username", func(c *Config) { c.Password = registry.Secret{Env: "X"} }, "username: must be set"},
		{"two secret sources", func(c *Config) { c.Username, c.Password = "u", registry.Secret{Env: "X", File: "/f"} }, "password: set either"},
		{"interval", func(c *Config) { c.Interval = time.Millisecond }, "interval:"},
		{"bad regexp", func(c *Config) { c.Apps = []string{"("} }, "apps[0]"},
		{"identity", func(c *Config) { c.Identity = "host" }, "identity:"},
		{"status", func(c *Config) { c.Statuses = []string{"up"} }, "statuses[0]"},
		{"tls pair", func(c *Config) { c.TLS.CertFile = "/c" }, "tls.certFile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Servers: []string{"http://127.0.0.1:8761/eureka"}}
			tc.mut(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	s := Config{Password: registry.Secret{File: "/p"}}.Secrets()
	if len(s) != 1 || s["password"].File != "/p" {
		t.Errorf("Secrets() = %v", s)
	}
}
