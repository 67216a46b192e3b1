package servers

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// BridgeOptions configures StartBridge.
type BridgeOptions struct {
	// Binary is the mcp-bridge binary, e.g. Suite.Build(t, "./cmd/mcp-bridge") (required).
	Binary string
	// ConfigFile is the path of the bridge's config file; or set Config to have one written.
	ConfigFile string
	// Config is the config file's YAML text, written to the test's temporary directory.
	Config string
	// Embedded runs the bridge without --config: it serves its embedded example services.
	Embedded bool
	// Args are extra flags appended after the ones StartBridge sets.
	Args []string
	// Env adds to the bridge's environment (e.g. variables a registry Secret names).
	Env map[string]string
	// ReadyTimeout bounds the wait for /readyz (default 30 s).
	ReadyTimeout time.Duration
	// Shards, above 1, runs that many MCP listeners (mcp.shards) on free ports
	// (--mcp-shard-addrs); MCPAddrs and ConfigSources list them. Zero takes mcp.shards from
	// Config when it sets one, so a config text with mcp.shards gets free ports and every shard
	// in ConfigSources too.
	Shards int
}

// Bridge is an mcp-bridge process serving MCP on loopback.
type Bridge struct {
	*Process
	// MCPAddr is where Istiod connects (host:port): shard 0's with several shards.
	MCPAddr string
	// MCPAddrs are every shard's MCP address, shard 0 first (just MCPAddr without sharding).
	MCPAddrs []string
	// AdminAddr serves /readyz, /metrics and the debug pages.
	AdminAddr string
	// ConfigFile is the config the bridge was started with ("" when Embedded); tests may rewrite it.
	ConfigFile string

	binary  string
	args    []string
	env     []string
	logDir  string
	timeout time.Duration
	procs   []*Process
}

// StartBridge runs `mcp-bridge serve --config <file> --mcp-addr 127.0.0.1:P --admin-addr
// 127.0.0.1:Q` (no --config when Embedded) on free ports and waits until GET /readyz on the
// admin address answers 200. Start it before the Istiod that uses it: Istiod exits if an xds://
// source is down when it starts.
func StartBridge(t testing.TB, opts BridgeOptions) *Bridge {
	t.Helper()
	if opts.Binary == "" {
		t.Fatalf("servers: BridgeOptions.Binary is required")
	}
	if n := btoi(opts.ConfigFile != "") + btoi(opts.Config != "") + btoi(opts.Embedded); n != 1 {
		t.Fatalf("servers: set exactly one of BridgeOptions.ConfigFile, Config and Embedded")
	}
	b := &Bridge{
		MCPAddr:    addr(FreePort(t)),
		AdminAddr:  addr(FreePort(t)),
		ConfigFile: opts.ConfigFile,
		binary:     opts.Binary,
		logDir:     testLogDir(t),
		timeout:    opts.ReadyTimeout,
	}
	if b.timeout == 0 {
		b.timeout = 30 * time.Second
	}
	if opts.Config != "" {
		b.ConfigFile = filepath.Join(t.TempDir(), "mcp-bridge.yaml")
		if err := os.WriteFile(b.ConfigFile, []byte(opts.Config), 0o600); err != nil {
			t.Fatalf("servers: writing bridge config: %v", err)
		}
	}
	if opts.Shards == 0 && opts.Config != "" {
		var c struct {
			MCP struct {
				Shards int `yaml:"shards"`
			} `yaml:"mcp"`
		}
		if err := yaml.Unmarshal([]byte(opts.Config), &c); err == nil {
			opts.Shards = c.MCP.Shards
		}
	}
	b.MCPAddrs = []string{b.MCPAddr}
	for range opts.Shards - 1 {
		b.MCPAddrs = append(b.MCPAddrs, addr(FreePort(t)))
	}
	b.args = []string{"serve", "--mcp-addr", b.MCPAddr, "--admin-addr", b.AdminAddr}
	if opts.Shards > 1 {
		b.args = append(b.args, "--mcp-shard-addrs", strings.Join(b.MCPAddrs, ","))
	}
	if b.ConfigFile != "" {
		b.args = append(b.args, "--config", b.ConfigFile)
	}
	b.args = append(b.args, opts.Args...)
	b.env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(opts.Env)) {
		b.env = append(b.env, k+"="+opts.Env[k])
	}
	if err := b.start(); err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Cleanup(func() {
		b.Process.Stop(5 * time.Second)
		if t.Failed() {
			for _, p := range b.procs {
				p.dumpLog(t)
			}
		}
	})
	t.Logf("servers: mcp-bridge ready (pid %d) mcp %s admin %s, log %s", b.PID(), b.MCPAddr, b.AdminAddr, b.LogPath)
	return b
}

func (b *Bridge) start() error {
	cmd := exec.Command(b.binary, b.args...)
	cmd.Env = b.env
	p, err := launch("mcp-bridge", cmd, b.logDir)
	if err != nil {
		return err
	}
	b.Process = p
	b.procs = append(b.procs, p)
	return p.WaitReady(b.timeout, b.ready)
}

// Restart stops the bridge (SIGTERM) and starts it again on the same ports and config.
func (b *Bridge) Restart(t testing.TB) {
	t.Helper()
	b.Process.Stop(5 * time.Second)
	if err := b.start(); err != nil {
		t.Fatalf("servers: restarting mcp-bridge: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ConfigSource is the configSources entry that points Istiod at this bridge (plaintext).
func (b *Bridge) ConfigSource() ConfigSource { return ConfigSource{Address: "xds://" + b.MCPAddr} }

// ConfigSources are the configSources entries of every shard, shard 0 first (plaintext).
func (b *Bridge) ConfigSources() []ConfigSource {
	out := make([]ConfigSource, len(b.MCPAddrs))
	for i, a := range b.MCPAddrs {
		out[i] = ConfigSource{Address: "xds://" + a}
	}
	return out
}

// Admin fetches a page from the admin address, e.g. "/metrics" or "/debug/resources".
func (b *Bridge) Admin(ctx context.Context, path string) ([]byte, error) {
	status, body, err := httpGet(ctx, "http://"+b.AdminAddr+path)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("mcp-bridge %s: %d %s", path, status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (b *Bridge) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := b.Admin(ctx, "/readyz")
	return err
}
