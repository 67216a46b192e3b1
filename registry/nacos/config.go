package nacos

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// All selects every namespace or every group (Config.Namespaces, Config.Groups).
const All = "*"

// Server flavors (Config.Flavor).
const (
	// FlavorNacos is an Alibaba Nacos 2.x server (or a cluster of them).
	FlavorNacos = "nacos"
	// FlavorPolaris is a PolarisMesh server speaking the Nacos protocols. It lists the services of
	// every group under DEFAULT_GROUP as "<group>__<name>", names the public namespace "default"
	// and has no namespace listing API.
	FlavorPolaris = "polaris"
)

// Dubbo 3 host modes (Dubbo.Dubbo3Hosts), as in the zookeeper adapter.
const (
	HostsApp       = "app"       // one dubbo-application service per application
	HostsInterface = "interface" // one dubbo-interface service per mapped interface instead
	HostsBoth      = "both"      // the application service, with its mapped interfaces as aliases
)

// Nacos names.
const (
	PublicNamespace = "public"
	DefaultGroup    = "DEFAULT_GROUP"
)

// Config is the "nacos" block of a registry of type nacos. The zero value of every field means
// its default.
type Config struct {
	// Servers are the Nacos servers of one cluster, "host:port" of their HTTP API (port default
	// 8848). The SDK talks gRPC to port+GRPCPortOffset and fails over between them. Required.
	Servers []string `yaml:"servers"`
	// GRPCPortOffset is added to a server's HTTP port to reach its gRPC port. Default 1000.
	GRPCPortOffset int `yaml:"grpcPortOffset"`
	// ContextPath is the HTTP API's path prefix. Default "/nacos".
	ContextPath string `yaml:"contextPath"`
	// Flavor is "nacos" (default) or "polaris" for a PolarisMesh server (see FlavorPolaris).
	Flavor string `yaml:"flavor"`

	// Namespaces are the namespace ids watched. ["*"] watches every namespace the server lists
	// (its console API, polled; flavor nacos only). Default ["public"]; "" means "public".
	Namespaces []string `yaml:"namespaces"`
	// Groups are the groups watched in each namespace. ["*"] watches every group (the catalog
	// API; with flavor polaris, the group prefixes of the service list). Default ["DEFAULT_GROUP"].
	Groups []string `yaml:"groups"`
	// Include, when set, keeps only services whose Nacos name fully matches one of these regular
	// expressions (Dubbo services are named "providers:<interface>:<version>:<group>").
	Include []string `yaml:"include"`
	// Exclude drops services whose Nacos name fully matches one of these regular expressions.
	Exclude []string `yaml:"exclude"`

	// PollInterval is how often the service lists are read: Nacos pushes instance changes but
	// not new services. Default 10s.
	PollInterval time.Duration `yaml:"pollInterval"`
	// PageSize is the number of service names asked per list request. Default 500.
	PageSize int `yaml:"pageSize"`
	// ResyncInterval is how often every subscribed service is read again from the server (a
	// safety net under pushes a server failed to send). Default 10m (flavor polaris: 1m, as
	// Polaris misses some pushes); negative turns it off.
	ResyncInterval time.Duration `yaml:"resyncInterval"`
	// RecoveryDelay is how long the adapter waits after the server answers again before it reads
	// everything and sends it whole, so that applications have re-registered their ephemeral
	// instances first. Until then the last-known state is served. Default 5s; negative: no wait.
	RecoveryDelay time.Duration `yaml:"recoveryDelay"`
	// Timeout bounds each request to Nacos. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// SubscribeConcurrency bounds the subscriptions made at once during a sync. Default 16.
	SubscribeConcurrency int `yaml:"subscribeConcurrency"`

	// Username and Password are Nacos auth credentials. Default: no auth.
	Username string          `yaml:"username"`
	Password registry.Secret `yaml:"password"`
	// AccessKey and SecretKey sign requests (Alibaba Cloud MSE, RAM auth). Default: unset.
	AccessKey registry.Secret `yaml:"accessKey"`
	SecretKey registry.Secret `yaml:"secretKey"`
	// TLS configures TLS to the servers (gRPC and HTTP). Default: plaintext.
	TLS TLS `yaml:"tls"`

	// CacheDir is where the Nacos SDK keeps its cache files and its log (the SDK insists on
	// writing them). It is never read back at start: a live server is the only source. Default
	// <os temp dir>/mcp-bridge/nacos/<registry name>. It is made 0700 and must be owned by the
	// bridge's user, with no directory above it writable by others unless sticky: the SDK's
	// config client would serve a "failover" file planted there (Dubbo mappings).
	CacheDir string `yaml:"cacheDir"`
	// SDKLogLevel is the level of the SDK's own log file (<cacheDir>/log/nacos-sdk.log): debug,
	// info, warn or error. Default warn. Not debug with credentials: the SDK then logs them.
	SDKLogLevel string `yaml:"sdkLogLevel"`

	// DefaultProtocol is the port protocol of plain application services (not Dubbo): http,
	// https, grpc or tcp. An instance with metadata secure=true is https either way. Default http.
	DefaultProtocol registry.Protocol `yaml:"defaultProtocol"`
	// ManagementPort also exposes the Spring Cloud management port (metadata management.port) as
	// a service port named "management". Default false.
	ManagementPort bool `yaml:"managementPort"`
	// Locality maps instances to Istio localities. Default: none.
	Locality Locality `yaml:"locality"`
	// Dubbo configures Dubbo services registered in Nacos.
	Dubbo Dubbo `yaml:"dubbo"`
}

// TLS configures TLS to the Nacos servers.
type TLS struct {
	// Enabled turns TLS on.
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the servers' certificates. Default: the system roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate, for servers that ask for one.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name verified in the servers' certificates.
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// Locality maps Nacos instances to Istio localities ("region/zone/subzone").
type Locality struct {
	// Clusters maps a Nacos cluster name to a locality, e.g. {"HZ-A": "cn-hangzhou/cn-hangzhou-a"}.
	Clusters map[string]string `yaml:"clusters"`
	// RegionKey, ZoneKey and SubzoneKey are instance metadata keys read for the locality parts,
	// e.g. zoneKey "zone" for Spring Cloud's zone metadata. They win over Clusters.
	RegionKey  string `yaml:"regionKey"`
	ZoneKey    string `yaml:"zoneKey"`
	SubzoneKey string `yaml:"subzoneKey"`
}

// Dubbo configures Dubbo services registered in Nacos.
type Dubbo struct {
	// Mapping reads Dubbo 3 interface->application mappings from Nacos config (dataId=<interface>,
	// group=MappingGroup) for the interfaces the registry shows (providers:/consumers: services)
	// and MappingInterfaces. Default false.
	Mapping bool `yaml:"mapping"`
	// MappingGroup is the config group of the mappings. Default "mapping".
	MappingGroup string `yaml:"mappingGroup"`
	// MappingInterfaces are interfaces whose mapping is read although no providers: or
	// consumers: service names them (Dubbo 3 applications registering only instances).
	MappingInterfaces []string `yaml:"mappingInterfaces"`
	// Dubbo3Hosts says which services a Dubbo 3 application becomes: "app", "interface" (one
	// dubbo-interface service per mapped interface instead) or "both" (the application with its
	// mapped interfaces as aliases). Default "both".
	Dubbo3Hosts string `yaml:"dubbo3Hosts"`
	// Rules reads Dubbo governance rules (tag and condition routers, configurators, mesh rules)
	// from Nacos config, dataId <key><suffix> in group RulesGroup, and watches them. Nacos cannot
	// list dataIds, so only the keys the registry suggests are read: see docs/registries.md.
	// Default false: every candidate key is one config listener on the server.
	Rules bool `yaml:"rules"`
	// RulesGroup is the config group of the governance rules. Default "dubbo", Dubbo's own.
	RulesGroup string `yaml:"rulesGroup"`
}

// WithDefaults returns the configuration with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.GRPCPortOffset == 0 {
		c.GRPCPortOffset = 1000
	}
	if c.ContextPath == "" {
		c.ContextPath = "/nacos"
	}
	if c.Flavor == "" {
		c.Flavor = FlavorNacos
	}
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{PublicNamespace}
	}
	if len(c.Groups) == 0 {
		c.Groups = []string{DefaultGroup}
	}
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Second
	}
	if c.PageSize == 0 {
		c.PageSize = 500
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 10 * time.Minute
		if c.Flavor == FlavorPolaris {
			// Polaris misses pushes (some drops to zero instances): re-read more often.
			c.ResyncInterval = time.Minute
		}
	}
	if c.RecoveryDelay == 0 {
		c.RecoveryDelay = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.SubscribeConcurrency == 0 {
		c.SubscribeConcurrency = 16
	}
	if c.SDKLogLevel == "" {
		c.SDKLogLevel = "warn"
	}
	if c.DefaultProtocol == "" {
		c.DefaultProtocol = registry.ProtocolHTTP
	}
	if c.Dubbo.MappingGroup == "" {
		c.Dubbo.MappingGroup = "mapping"
	}
	if c.Dubbo.Dubbo3Hosts == "" {
		c.Dubbo.Dubbo3Hosts = HostsBoth
	}
	if c.Dubbo.RulesGroup == "" {
		c.Dubbo.RulesGroup = "dubbo"
	}
	return c
}

// Secrets returns the credentials the configuration refers to that are set, by YAML key: the
// secret references and, with TLS on, the TLS files (key material the client loads).
func (c Config) Secrets() map[string]registry.Secret {
	out := make(map[string]registry.Secret)
	for key, s := range map[string]registry.Secret{"password": c.Password, "accessKey": c.AccessKey, "secretKey": c.SecretKey} {
		if !s.IsZero() {
			out[key] = s
		}
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
		if _, _, err := splitServer(s); err != nil {
			return fmt.Errorf("servers[%d]: %w", i, err)
		}
	}
	if c.GRPCPortOffset < 1 || c.GRPCPortOffset > 60000 {
		return fmt.Errorf("grpcPortOffset: %d is not in 1-60000", c.GRPCPortOffset)
	}
	if !strings.HasPrefix(c.ContextPath, "/") {
		return fmt.Errorf("contextPath: %q does not start with /", c.ContextPath)
	}
	switch c.Flavor {
	case FlavorNacos, FlavorPolaris:
	default:
		return fmt.Errorf("flavor: %q is not one of nacos, polaris", c.Flavor)
	}
	if err := validSelection(c.Namespaces, true); err != nil {
		return fmt.Errorf("namespaces: %w", err)
	}
	if c.Flavor == FlavorPolaris && isAll(c.Namespaces) {
		return errors.New(`namespaces: "*" needs Nacos's namespace listing API, which PolarisMesh does not serve; list the namespace ids`)
	}
	if err := validSelection(c.Groups, false); err != nil {
		return fmt.Errorf("groups: %w", err)
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
	if c.PollInterval < 100*time.Millisecond {
		return fmt.Errorf("pollInterval: %v is below 100ms", c.PollInterval)
	}
	if c.PageSize < 1 || c.PageSize > 10000 {
		return fmt.Errorf("pageSize: %d is not in 1-10000", c.PageSize)
	}
	if c.ResyncInterval > 0 && c.ResyncInterval < time.Second {
		return fmt.Errorf("resyncInterval: %v is below 1s (a negative value turns resync off)", c.ResyncInterval)
	}
	if c.Timeout < 100*time.Millisecond {
		return fmt.Errorf("timeout: %v is below 100ms", c.Timeout)
	}
	if c.SubscribeConcurrency < 1 || c.SubscribeConcurrency > 256 {
		return fmt.Errorf("subscribeConcurrency: %d is not in 1-256", c.SubscribeConcurrency)
	}
	for _, s := range []struct {
		key    string
		secret registry.Secret
	}{{"password", c.Password}, {"accessKey", c.AccessKey}, {"secretKey", c.SecretKey}} {
		if err := s.secret.Validate(); err != nil {
			return fmt.Errorf("%s: %w", s.key, err)
		}
	}
	if c.Username != "" && c.Password.IsZero() {
		return errors.New("password: must be set when username is")
	}
	if c.AccessKey.IsZero() != c.SecretKey.IsZero() {
		return errors.New("accessKey: accessKey and secretKey are set together")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.certFile: certFile and keyFile are set together")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify) {
		return errors.New("tls.enabled: TLS files or options are set but TLS is not enabled")
	}
	if c.CacheDir != "" && !filepath.IsAbs(c.CacheDir) {
		return fmt.Errorf("cacheDir: %q is not an absolute path", c.CacheDir)
	}
	switch c.SDKLogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("sdkLogLevel: %q is not one of debug, info, warn, error", c.SDKLogLevel)
	}
	// At debug the SDK logs every gRPC request whole, auth headers included (access token,
	// access key, signature): its log file would hold the credentials.
	if c.SDKLogLevel == "debug" && (c.Username != "" || !c.AccessKey.IsZero()) {
		return errors.New("sdkLogLevel: debug makes the Nacos SDK log every request with its credentials; use info when username or accessKey is set")
	}
	switch c.DefaultProtocol {
	case registry.ProtocolHTTP, registry.ProtocolHTTPS, registry.ProtocolGRPC, registry.ProtocolTCP:
	default:
		return fmt.Errorf("defaultProtocol: %q is not one of http, https, grpc, tcp", c.DefaultProtocol)
	}
	for name, l := range c.Locality.Clusters {
		if _, err := parseLocality(l); err != nil {
			return fmt.Errorf("locality.clusters[%s]: %w", name, err)
		}
	}
	switch c.Dubbo.Dubbo3Hosts {
	case HostsApp, HostsInterface, HostsBoth:
	default:
		return fmt.Errorf("dubbo.dubbo3Hosts: %q is not one of app, interface, both", c.Dubbo.Dubbo3Hosts)
	}
	if c.Dubbo.Dubbo3Hosts == HostsInterface && !c.Dubbo.Mapping {
		return errors.New(`dubbo.dubbo3Hosts: "interface" needs dubbo.mapping: true (the interfaces come from the mapping)`)
	}
	if strings.ContainsAny(c.Dubbo.RulesGroup, "@ \t\r\n") {
		return fmt.Errorf("dubbo.rulesGroup: %q contains '@' or white space", c.Dubbo.RulesGroup)
	}
	return nil
}

// validSelection checks a namespace or group list: "*" alone, or distinct names.
func validSelection(list []string, emptyOK bool) error {
	seen := make(map[string]bool, len(list))
	for i, v := range list {
		if v == All {
			if len(list) != 1 {
				return fmt.Errorf(`[%d]: "*" must be the only entry`, i)
			}
			continue
		}
		if v == "" && !emptyOK {
			return fmt.Errorf("[%d]: must not be empty", i)
		}
		if strings.ContainsAny(v, "@ \t\r\n") {
			return fmt.Errorf("[%d]: %q contains '@' or white space", i, v)
		}
		if seen[v] {
			return fmt.Errorf("[%d]: %q is listed twice", i, v)
		}
		seen[v] = true
	}
	return nil
}

// splitServer parses "host:port" (port default 8848).
func splitServer(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), "8848"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/ ") {
		return "", 0, fmt.Errorf("%q is not host:port", s)
	}
	return host, n, nil
}

func parseLocality(s string) (registry.Locality, error) {
	parts := strings.Split(s, "/")
	if len(parts) > 3 || parts[0] == "" {
		return registry.Locality{}, fmt.Errorf("%q is not region[/zone[/subzone]]", s)
	}
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return registry.Locality{Region: parts[0], Zone: parts[1], Subzone: parts[2]}, nil
}

// isAll reports a selection of everything: ["*"].
func isAll(list []string) bool { return len(list) == 1 && list[0] == All }

// anchor makes a pattern match whole names only.
func anchor(p string) string { return `^(?:` + p + `)$` }
