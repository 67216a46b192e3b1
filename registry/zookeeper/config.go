package zookeeper

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Dubbo 3 host modes (Config.Dubbo3Hosts).
const (
	HostsApp       = "app"       // one dubbo-application service per application
	HostsInterface = "interface" // one dubbo-interface service per mapped interface instead
	HostsBoth      = "both"      // the application service, with its mapped interfaces as aliases
)

// Config configures a ZooKeeper registry. The zero value of every field means its default.
type Config struct {
	// Servers are the ZooKeeper servers, "host:port" (port default 2181). An entry may also be a
	// Java-style connect string "h1:2181,h2:2181/chroot". Required.
	Servers []string `yaml:"servers"`
	// Chroot is a path prefix for everything the adapter reads, as in a Java connect string
	// ending in "/chroot". Default: none.
	Chroot string `yaml:"chroot"`
	// Digest is the "user:password" of ZooKeeper digest authentication, for trees protected by
	// ACLs. Default: no authentication.
	Digest registry.Secret `yaml:"digest"`
	// SessionTimeout is asked of the server, which clamps it to 2-20 ticks. Default 30s.
	SessionTimeout time.Duration `yaml:"sessionTimeout"`
	// ReconnectBackoff is the first delay before dialing again after a failed dial; it doubles
	// up to ReconnectBackoffMax. Defaults 500ms and 30s.
	ReconnectBackoff    time.Duration `yaml:"reconnectBackoff"`
	ReconnectBackoffMax time.Duration `yaml:"reconnectBackoffMax"`
	// ResyncInterval is how often everything is read again and sent whole, a safety net under
	// the watches. Default 10m; a negative value turns it off.
	ResyncInterval time.Duration `yaml:"resyncInterval"`
	// DubboRoots are the Dubbo 2 registry roots (Dubbo's registry group), each watched as
	// /<root>/<interface>/{providers,consumers,configurators,routers}. Default ["dubbo"].
	DubboRoots []string `yaml:"dubboRoots"`
	// ServicesRoot is the Curator service-discovery base path of Dubbo 3 application-level
	// instances and Spring Cloud Zookeeper. Default "/services"; "-" turns it off.
	ServicesRoot string `yaml:"servicesRoot"`
	// MappingRoot holds Dubbo 3 interface->application mappings. Default "/dubbo/mapping"; "-"
	// turns it off.
	MappingRoot string `yaml:"mappingRoot"`
	// GovernanceRoot is Dubbo's configuration-center node holding governance rules
	// (<key>.tag-router, .condition-router, .configurators, .MESHAPPRULE): /<namespace>/config/<group>
	// in Dubbo's terms. Default "/dubbo/config/dubbo"; "-" turns reading rules off, the Dubbo 2.6
	// route:// URLs under routers/ included.
	GovernanceRoot string `yaml:"governanceRoot"`
	// Dubbo3Hosts says which services a Dubbo 3 application becomes: "app" (the application
	// only), "interface" (one dubbo-interface service per interface the mapping names instead) or
	// "both" (the application, with those interfaces as aliases). Default "both".
	Dubbo3Hosts string `yaml:"dubbo3Hosts"`
	// ReadConcurrency bounds the reads in flight during a sync. Default 64.
	ReadConcurrency int `yaml:"readConcurrency"`
}

// WithDefaults returns the configuration with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = 500 * time.Millisecond
	}
	if c.ReconnectBackoffMax == 0 {
		c.ReconnectBackoffMax = 30 * time.Second
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 10 * time.Minute
	}
	if len(c.DubboRoots) == 0 {
		c.DubboRoots = []string{"dubbo"}
	}
	if c.ServicesRoot == "" {
		c.ServicesRoot = "/services"
	}
	if c.MappingRoot == "" {
		c.MappingRoot = "/dubbo/mapping"
	}
	if c.GovernanceRoot == "" {
		c.GovernanceRoot = "/dubbo/config/dubbo"
	}
	if c.Dubbo3Hosts == "" {
		c.Dubbo3Hosts = HostsBoth
	}
	if c.ReadConcurrency == 0 {
		c.ReadConcurrency = 64
	}
	return c
}

// Secrets returns the credentials the configuration refers to, by YAML key: the digest, if set.
func (c Config) Secrets() map[string]registry.Secret {
	if c.Digest.IsZero() {
		return nil
	}
	return map[string]registry.Secret{"digest": c.Digest}
}

// Validate reports the first problem of a configuration (after WithDefaults), naming the field
// by its YAML key.
func (c Config) Validate() error {
	servers, chroot, err := c.connect()
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		return errors.New("servers: must not be empty")
	}
	if err := validPath(chroot); chroot != "" && err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := c.Digest.Validate(); err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if c.SessionTimeout < time.Second {
		return fmt.Errorf("sessionTimeout: %v is below 1s", c.SessionTimeout)
	}
	if c.ReconnectBackoff <= 0 || c.ReconnectBackoffMax < c.ReconnectBackoff {
		return fmt.Errorf("reconnectBackoff: %v must be positive and at most reconnectBackoffMax (%v)", c.ReconnectBackoff, c.ReconnectBackoffMax)
	}
	if c.ResyncInterval > 0 && c.ResyncInterval < time.Second {
		return fmt.Errorf("resyncInterval: %v is below 1s (a negative value turns resync off)", c.ResyncInterval)
	}
	seen := make(map[string]bool)
	for i, r := range c.DubboRoots {
		p := rootPath(r)
		if err := validPath(p); err != nil || p == "/" {
			return fmt.Errorf("dubboRoots[%d]: %q is not a znode path below /", i, r)
		}
		if seen[p] {
			return fmt.Errorf("dubboRoots[%d]: %q is listed twice", i, r)
		}
		seen[p] = true
	}
	for _, f := range []struct{ key, val string }{{"servicesRoot", c.ServicesRoot}, {"mappingRoot", c.MappingRoot}, {"governanceRoot", c.GovernanceRoot}} {
		if f.val == "-" {
			continue
		}
		if err := validPath(f.val); err != nil || f.val == "/" {
			return fmt.Errorf("%s: %q is not an absolute znode path below / (or \"-\" to turn it off)", f.key, f.val)
		}
		if seen[f.val] {
			return fmt.Errorf("%s: %q is also a Dubbo root or another root", f.key, f.val)
		}
		seen[f.val] = true
	}
	switch c.Dubbo3Hosts {
	case HostsApp, HostsInterface, HostsBoth:
	default:
		return fmt.Errorf("dubbo3Hosts: %q is not one of app, interface, both", c.Dubbo3Hosts)
	}
	if c.ReadConcurrency < 1 || c.ReadConcurrency > 4096 {
		return fmt.Errorf("readConcurrency: %d is not in 1-4096", c.ReadConcurrency)
	}
	return nil
}

// connect splits Servers into host:port addresses and a chroot (Chroot, else the suffix of a
// connect string).
func (c Config) connect() ([]string, string, error) {
	var servers []string
	chroot := c.Chroot
	for i, entry := range c.Servers {
		hosts := entry
		if j := strings.IndexByte(entry, '/'); j >= 0 {
			hosts = entry[:j]
			suffix := entry[j:]
			if chroot != "" && chroot != suffix {
				return nil, "", fmt.Errorf("servers[%d]: chroot %q differs from chroot %q", i, suffix, chroot)
			}
			chroot = suffix
		}
		for _, h := range strings.Split(hosts, ",") {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			host, port, err := net.SplitHostPort(h)
			if err != nil {
				host, port = strings.Trim(h, "[]"), "2181"
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
				return nil, "", fmt.Errorf("servers[%d]: %q is not host:port", i, h)
			}
			servers = append(servers, net.JoinHostPort(host, port))
		}
	}
	chroot = strings.TrimSuffix(chroot, "/")
	return servers, chroot, nil
}

// rootPath turns a Dubbo registry group ("dubbo", "/dubbo") into its znode path.
func rootPath(r string) string {
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	if len(r) > 1 {
		r = strings.TrimSuffix(r, "/")
	}
	return r
}

func validPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q does not start with /", p)
	}
	if p != "/" && (strings.HasSuffix(p, "/") || path.Clean(p) != p) {
		return fmt.Errorf("%q is not a clean path", p)
	}
	return nil
}
