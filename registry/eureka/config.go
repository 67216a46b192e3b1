package eureka

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Identities (Config.Identity): what a Eureka service is named after.
const (
	IdentityApp = "app" // the application name (Eureka upper-cases it)
	IdentityVIP = "vip" // the vipAddress
)

// Statuses of Eureka instances (com.netflix.appinfo.InstanceInfo.InstanceStatus).
const (
	StatusUp           = "UP"
	StatusDown         = "DOWN"
	StatusStarting     = "STARTING"
	StatusOutOfService = "OUT_OF_SERVICE"
	StatusUnknown      = "UNKNOWN"
)

func knownStatuses() []string {
	return []string{StatusUp, StatusDown, StatusStarting, StatusOutOfService, StatusUnknown}
}

// Config is the "eureka" block of a registry of type eureka. The zero value of every field means
// its default.
type Config struct {
	// Servers are the Eureka service URLs of one cluster ("http://host:8761/eureka"), tried in
	// order: a failing server hands over to the next. Required.
	Servers []string `yaml:"servers"`
	// Username and Password are HTTP basic auth credentials. Default: no auth.
	Username string          `yaml:"username"`
	Password registry.Secret `yaml:"password"`
	// Interval is the time between delta fetches (/apps/delta). Default 30s, the Eureka clients'
	// registryFetchIntervalSeconds.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds each request to one server. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Apps, when set, keeps only applications whose name fully matches one of these regular
	// expressions (matched against the name as Eureka has it, upper-case).
	Apps []string `yaml:"apps"`
	// Exclude drops applications whose name fully matches one of these regular expressions.
	Exclude []string `yaml:"exclude"`
	// Identity names services after the application ("app", default) or the vipAddress ("vip").
	Identity string `yaml:"identity"`
	// Statuses are the instance statuses that make endpoints (after overriddenStatus). Default [UP].
	Statuses []string `yaml:"statuses"`
	// ManagementPort also exposes the Spring Cloud management port (metadata management.port) as
	// a service port named "management", where it differs from the main port. Default false.
	ManagementPort bool `yaml:"managementPort"`
	// TLS configures TLS to https:// servers. Default: the system roots, no client certificate.
	TLS TLS `yaml:"tls"`
}

// TLS configures TLS to the Eureka servers.
type TLS struct {
	// CAFile verifies the servers' certificates. Default: the system roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate, for servers that ask for one.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// WithDefaults returns the configuration with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Identity == "" {
		c.Identity = IdentityApp
	}
	if len(c.Statuses) == 0 {
		c.Statuses = []string{StatusUp}
	}
	return c
}

// Secrets returns the credentials the configuration refers to that are set, by YAML key.
func (c Config) Secrets() map[string]registry.Secret {
	out := make(map[string]registry.Secret)
	if !c.Password.IsZero() {
		out["password"] = c.Password
	}
	registry.AddTLSFiles(out, c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
	return out
}

// Validate reports the first problem of a configuration (after WithDefaults), naming the field
// by its YAML key.
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("servers: must not be empty")
	}
	for i, s := range c.Servers {
		if err := checkServer(s); err != nil {
			return fmt.Errorf("servers[%d]: %w", i, err)
		}
	}
	if err := c.Password.Validate(); err != nil {
		return fmt.Errorf("password: %w", err)
	}
	if c.Username != "" && c.Password.IsZero() {
		return errors.New("password: must be set when username is")
	}
	if c.Username == "" && !c.Password.IsZero() {
		return errors.New("username: must be set when password is")
	}
	if strings.Contains(c.Username, ":") {
		return errors.New("username: must not contain ':' (HTTP basic auth)")
	}
	if c.Interval < 100*time.Millisecond {
		return fmt.Errorf("interval: %v is below 100ms", c.Interval)
	}
	if c.Timeout < 100*time.Millisecond {
		return fmt.Errorf("timeout: %v is below 100ms", c.Timeout)
	}
	for _, f := range []struct {
		key      string
		patterns []string
	}{{"apps", c.Apps}, {"exclude", c.Exclude}} {
		for i, p := range f.patterns {
			if _, err := regexp.Compile(anchor(p)); err != nil {
				return fmt.Errorf("%s[%d]: %w", f.key, i, err)
			}
		}
	}
	switch c.Identity {
	case IdentityApp, IdentityVIP:
	default:
		return fmt.Errorf("identity: %q is not one of app, vip", c.Identity)
	}
	for i, s := range c.Statuses {
		if !slices.Contains(knownStatuses(), s) {
			return fmt.Errorf("statuses[%d]: %q is not one of %s", i, s, strings.Join(knownStatuses(), ", "))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.certFile: certFile and keyFile are set together")
	}
	return nil
}

// checkServer accepts an absolute http(s) URL without credentials, query or fragment.
func checkServer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https (e.g. http://eureka:8761/eureka)", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		// A password in the URL would be shown and logged with it: it belongs in password.
		return fmt.Errorf("server URL must not contain credentials; use username and password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

// anchor makes a pattern match whole names only.
func anchor(p string) string { return `^(?:` + p + `)$` }
