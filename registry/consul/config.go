package consul

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// AllDatacenters selects every datacenter the catalog lists (Config.Datacenters).
const AllDatacenters = "*"

// Config is the "consul" block of a registry of type consul. The zero value of every field means
// its default.
type Config struct {
	// Address is the agent's HTTP API, "host:port" (http) or "https://host:port"; several
	// addresses (agents of one cluster) are used one at a time, the next one after a failure; one
	// that refuses the connection is passed over within the same request. Default 127.0.0.1:8500.
	Address Addresses `yaml:"address"`
	// Datacenters are the datacenters watched. Empty: the agent's own. ["*"]: every datacenter
	// the catalog lists (re-read every minute). One datacenter failing while another answers
	// keeps its last-known services without failing the registry (datacenters.go).
	Datacenters []string `yaml:"datacenters"`
	// Include, when set, keeps only services whose name fully matches one of these regular
	// expressions; Exclude drops those fully matching one of its expressions.
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
	// Tags keeps only services carrying all of these tags, and of those only the instances that do.
	Tags []string `yaml:"tags"`
	// Token is the ACL token, read from a file or an environment variable. The token needs
	// service:read on the watched services and node:read on their nodes. Default: none (the
	// agent's default token applies; the CONSUL_HTTP_TOKEN environment of the Consul CLI is not read).
	Token registry.Secret `yaml:"token"`
	// Namespace and Partition are Consul Enterprise's, passed through when set.
	Namespace string `yaml:"namespace"`
	Partition string `yaml:"partition"`
	// HealthStatus lists the aggregated check states that count as healthy. Default [passing].
	HealthStatus []string `yaml:"healthStatus"`
	// Wait is the blocking-query wait: at rest each watched query makes one request per Wait.
	// Default 5m (Consul caps it at 10m).
	Wait time.Duration `yaml:"wait"`
	// QueryRate and QueryBurst are the token bucket each watched query draws from before every
	// request: under churn a query is re-read at most QueryRate times a second after the burst.
	// Default 1 and 5.
	QueryRate  float64 `yaml:"queryRate"`
	QueryBurst int     `yaml:"queryBurst"`
	// Timeout bounds the liveness probe (GET /v1/status/leader), made every Timeout/2 alongside
	// the blocking queries: a hung agent (frozen, or a network that drops packets) holds a blocking
	// query open without any error for up to Wait, so without the probe it would be noticed only
	// minutes later. A failed probe reports the registry failed and restarts every query, which
	// then answer at once when the agent does. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// RecoveryDelay is how long the adapter waits, after the agent answers again, before it sends
	// the full state, so that services re-register with a restarted agent first. Until then the
	// last-known state is served. Default 5s; negative: no wait.
	RecoveryDelay time.Duration `yaml:"recoveryDelay"`
	// DefaultProtocol is the port protocol of plain services (not Dubbo): http, https, grpc or
	// tcp. An instance with Meta secure=true is https either way. Default http.
	DefaultProtocol registry.Protocol `yaml:"defaultProtocol"`
	// TLS configures TLS to the agent (an https:// address turns it on too).
	TLS TLS `yaml:"tls"`
}

// TLS configures TLS to the Consul agent.
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"caFile"`
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Addresses is one address or a list of them.
type Addresses []string

// UnmarshalYAML accepts a single address as well as a list, so that the common case reads
// "address: 127.0.0.1:8500".
func (a *Addresses) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = Addresses{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("address: want an address or a list of addresses: %w", err)
	}
	*a = list
	return nil
}

// Aggregated check states (Consul's api.HealthPassing etc.).
var healthStates = []string{"passing", "warning", "critical"}

// WithDefaults returns the configuration with every unset field at its default.
func (c Config) WithDefaults() Config {
	if len(c.Address) == 0 {
		c.Address = Addresses{"127.0.0.1:8500"}
	}
	if len(c.HealthStatus) == 0 {
		c.HealthStatus = []string{"passing"}
	}
	if c.Wait == 0 {
		c.Wait = 5 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.QueryRate == 0 {
		c.QueryRate = 1
	}
	if c.QueryBurst == 0 {
		c.QueryBurst = 5
	}
	if c.RecoveryDelay == 0 {
		c.RecoveryDelay = 5 * time.Second
	}
	if c.DefaultProtocol == "" {
		c.DefaultProtocol = registry.ProtocolHTTP
	}
	return c
}

// Secrets returns the credentials the configuration refers to that are set, by YAML key.
func (c Config) Secrets() map[string]registry.Secret {
	out := map[string]registry.Secret{}
	if !c.Token.IsZero() {
		out["token"] = c.Token
	}
	registry.AddTLSFiles(out, c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
	return out
}

// Validate reports the first problem of a configuration (after WithDefaults), naming the field
// by its YAML key.
func (c Config) Validate() error {
	if len(c.Address) == 0 {
		return errors.New("address: must not be empty")
	}
	for i, a := range c.Address {
		if _, _, err := parseAddress(a); err != nil {
			return fmt.Errorf("address[%d]: %w", i, err)
		}
	}
	seen := map[string]bool{}
	for i, dc := range c.Datacenters {
		switch {
		case dc == AllDatacenters && len(c.Datacenters) != 1:
			return fmt.Errorf(`datacenters[%d]: "*" must be the only entry`, i)
		case dc == "":
			return fmt.Errorf("datacenters[%d]: must not be empty", i)
		case strings.ContainsAny(dc, "/?&# \t"):
			return fmt.Errorf("datacenters[%d]: %q is not a datacenter name", i, dc)
		case seen[dc]:
			return fmt.Errorf("datacenters[%d]: %q is listed twice", i, dc)
		}
		seen[dc] = true
	}
	for _, f := range []struct {
		key      string
		patterns []string
	}{{"include", c.Include}, {"exclude", c.Exclude}} {
		for i, p := range f.patterns {
			if _, err := regexp.Compile(anchor(p)); err != nil {
				return fmt.Errorf("%s[%d]: %w", f.key, i, err)
			}
		}
	}
	for i, t := range c.Tags {
		if t == "" {
			return fmt.Errorf("tags[%d]: must not be empty", i)
		}
	}
	if err := c.Token.Validate(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	for i, s := range c.HealthStatus {
		if !slices.Contains(healthStates, s) {
			return fmt.Errorf("healthStatus[%d]: %q is not one of passing, warning, critical", i, s)
		}
	}
	if c.Wait < time.Second || c.Wait > 10*time.Minute {
		return fmt.Errorf("wait: %v is not in 1s-10m (Consul caps blocking queries at 10m)", c.Wait)
	}
	if c.Timeout < 200*time.Millisecond || c.Timeout > time.Minute {
		return fmt.Errorf("timeout: %v is not in 200ms-1m", c.Timeout)
	}
	if !(c.QueryRate > 0) || c.QueryRate > 100 {
		return fmt.Errorf("queryRate: %v is not in (0, 100] requests per second", c.QueryRate)
	}
	if c.QueryBurst < 1 || c.QueryBurst > 100 {
		return fmt.Errorf("queryBurst: %d is not in 1-100", c.QueryBurst)
	}
	switch c.DefaultProtocol {
	case registry.ProtocolHTTP, registry.ProtocolHTTPS, registry.ProtocolGRPC, registry.ProtocolTCP:
	default:
		return fmt.Errorf("defaultProtocol: %q is not one of http, https, grpc, tcp", c.DefaultProtocol)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.certFile: certFile and keyFile are set together")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "") {
		return errors.New("tls.enabled: TLS files are set but TLS is not enabled")
	}
	return nil
}

// parseAddress splits an address into scheme and host:port (port default 8500).
func parseAddress(a string) (scheme, hostport string, err error) {
	scheme = "http"
	if s, rest, ok := strings.Cut(a, "://"); ok {
		if s != "http" && s != "https" {
			return "", "", fmt.Errorf("%q: scheme %q is not http or https", a, s)
		}
		scheme, a = s, rest
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		a = net.JoinHostPort(strings.Trim(a, "[]"), "8500")
	}
	u, err := url.Parse(scheme + "://" + a)
	if err != nil || u.Hostname() == "" || u.Path != "" || u.Port() == "" {
		return "", "", fmt.Errorf("%q is not [http[s]://]host[:port]", a)
	}
	return scheme, u.Host, nil
}

// anchor makes a pattern match whole names only.
func anchor(p string) string { return `^(?:` + p + `)$` }
