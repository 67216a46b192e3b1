// Package config reads the bridge's YAML configuration: strictly (an unknown or duplicated field is
// an error naming it and its line), with defaults filled in and every value validated before
// anything starts. deploy/examples/config.yaml documents every option and its default.
package config

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/rules"
	"github.com/mcp-bridge/mcp-bridge/state"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Config is the whole configuration file.
type Config struct {
	// MCP is the MCP-over-xDS listener Istiod connects to.
	MCP MCP `yaml:"mcp"`
	// Admin is the HTTP listener for health, metrics and debug pages.
	Admin Admin `yaml:"admin"`
	// Log sets the structured log output.
	Log Log `yaml:"log"`
	// Registries are the service registries to watch. At least one.
	Registries []Registry `yaml:"registries"`
	// Debounce batches registry events before a push.
	Debounce merge.Debounce `yaml:"debounce"`
	// Protection keeps last-known instances when a registry fails or suddenly loses most of them.
	Protection merge.Protection `yaml:"protection"`
	// Duplicates says what happens to a service present in several registries.
	Duplicates merge.Duplicates `yaml:"duplicates"`
	// Translate sets how services become Istio resources.
	Translate translate.Options `yaml:"translate"`
	// StaticResources are files of Istio resources (Kubernetes-style YAML: VirtualService,
	// DestinationRule, Sidecar, ServiceEntry, WorkloadEntry) served to Istiod beside the generated
	// ones. They are validated like generated resources; an invalid one stops the bridge from
	// starting, naming the file, the document's line and every problem.
	StaticResources []string `yaml:"staticResources"`
	// Rules are the rules engine's rules (docs/rules.md): inline ones and rule files, both
	// reloaded on change. A broken rule file at start stops the bridge; later, it is rejected with
	// file, line and reason, and the last good rules keep running.
	Rules rules.Config `yaml:"rules"`
	// Governance says what becomes of the registries' own governance rules (Dubbo tag and
	// condition routers, configurators, mesh rules): mode off, report (the default: translated
	// and shown on /debug/governance, not applied) or apply. docs/rules.md#registry-governance-rules.
	Governance rules.GovernanceConfig `yaml:"governance"`
	// SidecarScopes makes a Sidecar per consumer application the registries record (Dubbo
	// consumers/ nodes), limiting its egress to what it consumes: off unless opted in per
	// application, namespace or for all. docs/rules.md#sidecar-scopes.
	SidecarScopes rules.ScopeConfig `yaml:"sidecarScopes"`
	// State keeps each registry's last-known services in a file across restarts (`state.file`,
	// `state.interval`, default 5s), so that a bridge restarted while a registry is unreachable
	// serves them at once instead of waiting for it (up to protection.initialSyncTimeout) and
	// then serving nothing for it.
	//
	// Off by default (no file), because no default path is right everywhere: the shipped
	// containers have a read-only root file system, a path derived from the host or pod name
	// changes at every restart (which defeats the purpose), and bridges run side by side (tests,
	// several configurations on one host) must not share a file, which a fixed path would make
	// them do. The shipped Kubernetes manifest, Helm chart and sidecar example turn it on with a
	// file on an emptyDir volume, which survives container restarts; see state.Config.
	State state.Config `yaml:"state"`

	// credentialLines maps the YAML path of each credential source to its line, for
	// CheckCredentials.
	credentialLines map[string]int
}

// MCP configures the MCP-over-xDS gRPC listener.
type MCP struct {
	// Address is host:port to listen on. Default ":18848" (all interfaces: Istiod dials it).
	Address string `yaml:"address"`
	// TLS, when CertFile and KeyFile are set, makes the listener TLS-only. Istio >= 1.26 can
	// verify it (configSources[].tlsSettings, mode SIMPLE); older Istio speaks plaintext only.
	TLS TLS `yaml:"tls"`
	// Limits bound what one (unauthenticated) MCP client can make the bridge hold: request size,
	// type URL and node id length, streams in all and per peer, and so on; see mcp.Limits.
	Limits mcp.Limits `yaml:"limits"`
	// Pacing says how fast newer versions are pushed to a client: after Istiod has digested the
	// previous push (its monitoring port's push-context counter), or after its ACK; see mcp.Pacing
	// and docs/istiod-mcp.md.
	Pacing mcp.Pacing `yaml:"pacing"`
	// FillIstiodBuffer (default true) sends a stream recognised as Istiod's config-source client
	// (node metadata GENERATOR "api", MeshConfig asked first) 100 empty MeshConfig responses
	// before its first real response. Istiod keeps the first 100 responses of each xds:// source
	// for its whole life (pkg/adsc's unread XDSUpdates channel); filled with empty ones, it keeps
	// none of the bridge's large ones. Turn off only if an Istio release drains that channel and
	// the 100 round trips per connection matter; see docs/scale.md, "Istiod memory under MCP pushes".
	FillIstiodBuffer *bool `yaml:"fillIstiodBuffer"`
	// Shards is how many MCP listeners serve the resources (default 1): each a complete MCP
	// server on its own port, consecutive from Address's port, each serving a stable share of the
	// services (docs/scale.md#sharding). Istiod lists one xds:// config source per shard, and a
	// change re-sends only its shard's collection, so Istiod re-reads 1/N of the resources.
	Shards int `yaml:"shards"`
	// ShardAddresses lists each shard's host:port explicitly instead of consecutive ports; when
	// set, the number of shards is its length (shards, if also set, must agree).
	ShardAddresses []string `yaml:"shardAddresses"`
}

// TLS is a server certificate. The files are re-read when they change, so a rotated certificate
// (cert-manager, a mounted Secret) is picked up without a restart.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Admin configures the HTTP admin listener.
type Admin struct {
	// Address is host:port to listen on. Default "127.0.0.1:18849": debug pages show the whole
	// service estate, so they are not exposed beyond the host unless asked for.
	Address string `yaml:"address"`
	// Token, when set, is a bearer token every page but /healthz and /readyz requires
	// ("Authorization: Bearer <token>"): for an admin listener exposed beyond the host. A {file}
	// or {env} reference, read on each request (a rotated file is picked up) and never logged.
	Token registry.Secret `yaml:"token"`
	// History bounds the resource history (/history): versions kept per resource and bytes for all.
	History history.Options `yaml:"history"` // Profiling serves Go's runtime profiles at /debug/pprof/ (heap, CPU, goroutines: what an
	// operator needs to explain the bridge's memory or CPU). Off by default: a profile shows the
	// process's internals and a CPU profile or trace costs it while it runs. Behind Token like
	// every admin page.
	Profiling bool `yaml:"profiling"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// Defaults for the listeners.
const (
	DefaultMCPAddress   = ":18848"
	DefaultAdminAddress = "127.0.0.1:18849"
)

// Default is the configuration used when no file is given: the embedded example services of the
// file registry, served on the default addresses.
func Default() *Config {
	// A file registry with no block serves the embedded example services.
	// The example rules (rules/example.yaml) route them, so a first run shows generated policy.
	c := &Config{Registries: []Registry{{Name: "example", Type: "file"}}, Rules: rules.Config{Inline: rules.ExampleInline()}}
	c.applyDefaults()
	return c
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes, defaults and validates a configuration document.
func Parse(b []byte) (*Config, error) {
	c, doc, err := decode(b)
	if err != nil {
		return nil, err
	}
	if len(c.Translate.Registries) > 0 {
		// Naming is set per registry entry; silently replacing this list would hide a mistake.
		return nil, problems{{path: "translate.registries", msg: "is not set here: give each registry's namespace and hosts in its entry under registries"}}.withLines(doc)
	}
	c.applyDefaults()
	if errs := c.validate(); len(errs) > 0 {
		return nil, errs.withLines(doc)
	}
	c.rememberCredentialLines(doc)
	return c, nil
}

func (c *Config) applyDefaults() {
	if c.MCP.Address == "" {
		c.MCP.Address = DefaultMCPAddress
	}
	c.MCP.Limits = c.MCP.Limits.WithDefaults()
	c.MCP.Pacing = c.MCP.Pacing.WithDefaults()
	if c.MCP.FillIstiodBuffer == nil {
		fill := true
		c.MCP.FillIstiodBuffer = &fill
	}
	if c.MCP.Shards == 0 {
		c.MCP.Shards = max(len(c.MCP.ShardAddresses), 1)
	}
	if c.Admin.Address == "" {
		c.Admin.Address = DefaultAdminAddress
	}
	c.Admin.History = c.Admin.History.WithDefaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	c.Debounce = c.Debounce.WithDefaults()
	c.Protection = c.Protection.WithDefaults()
	c.Duplicates = c.Duplicates.WithDefaults()
	c.State = c.State.WithDefaults()
	for i := range c.Registries {
		c.Registries[i].applyDefaults()
	}
	c.Translate = c.Translate.WithDefaults()
	c.Translate.Registries = c.TranslateRegistries()
}

// TranslateRegistries returns the per-registry naming options translate needs.
func (c *Config) TranslateRegistries() []translate.RegistryOptions {
	out := make([]translate.RegistryOptions, 0, len(c.Registries))
	for _, r := range c.Registries {
		out = append(out, r.translateOptions())
	}
	return out
}

// RegistryNames returns the configured registry names in order.
func (c *Config) RegistryNames() []string {
	names := make([]string, len(c.Registries))
	for i, r := range c.Registries {
		names[i] = r.Name
	}
	return names
}

func (c *Config) validate() problems {
	var ps problems
	ps.check("mcp.address", validateAddress(c.MCP.Address))
	ps.check("mcp.limits", c.MCP.Limits.Validate())
	ps.check("mcp.pacing", c.MCP.Pacing.Validate())
	c.MCP.validateShards(&ps)
	ps.check("admin.address", validateAddress(c.Admin.Address))
	ps.check("admin.token", c.Admin.Token.Validate())
	ps.check("admin.history", c.Admin.History.Validate())
	if c.MCP.TLS.Enabled() {
		if c.MCP.TLS.CertFile == "" || c.MCP.TLS.KeyFile == "" {
			ps.add("mcp.tls", "certFile and keyFile must both be set")
		} else if _, err := loadKeyPair(c.MCP.TLS.CertFile, c.MCP.TLS.KeyFile); err != nil {
			ps.check("mcp.tls", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add("log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		ps.add("log.format", fmt.Sprintf("%q is not one of text, json", c.Log.Format))
	}
	ps.check("debounce", c.Debounce.Validate())
	ps.check("protection", c.Protection.Validate())
	ps.check("duplicates", c.Duplicates.Validate(c.RegistryNames()))
	ps.check("state", c.State.Validate())
	if len(c.Registries) == 0 {
		ps.add("registries", "at least one registry is required")
	}
	seen := make(map[string]int)
	for i, r := range c.Registries {
		path := "registries[" + strconv.Itoa(i) + "]"
		if first, dup := seen[r.Name]; dup && r.Name != "" {
			ps.add(path+".name", fmt.Sprintf("%q is already the name of registries[%d]", r.Name, first))
		}
		seen[r.Name] = i
		ps.validateRegistry(path, r)
	}
	// Registry naming is configured and checked per registry entry above; translate checks the rest.
	tr := c.Translate
	tr.Registries = nil
	ps.check("translate", tr.Validate())
	ps.check("rules", c.Rules.Validate())
	ps.check("governance", c.Governance.Validate())
	ps.check("sidecarScopes", c.SidecarScopes.Validate())
	for i, f := range c.StaticResources {
		if _, err := os.Stat(f); err != nil {
			ps.check("staticResources["+strconv.Itoa(i)+"]", err)
		}
	}
	return ps
}

func validateAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host != "" && net.ParseIP(host) == nil {
		if !isDNSName(host) {
			return fmt.Errorf("%q: host %q is neither an IP address nor a host name", addr, host)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}
