package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// secretServers are the real registry servers a secrets scenario runs against.
type secretServers struct {
	nacos  string // Nacos-protocol address (Polaris)
	zk     string // ZooKeeper client address
	consul string // Consul agent HTTP address
	eureka string // Eureka-protocol service URL (Polaris)
}

// secretRegistry is one registry of the secrets scenario: its configuration, with every
// credential it can read planted. secret(key, value) plants value (alternately in a file and in
// an environment variable, so both delivery paths are covered) and returns the YAML of the
// registry.Secret that points at it. A registry type added later adds one row here.
type secretRegistry struct {
	name   string
	config func(s secretServers, dir string, secret func(key, value string) string) string
}

var secretRegistries = []secretRegistry{
	{"nacos", func(s secretServers, dir string, secret func(key, value string) string) string {
		return fmt.Sprintf(`  - name: nacos-secrets
    type: nacos
    nacos:
      servers: [%q]
      flavor: polaris
      pollInterval: 300ms
      timeout: 1s
      sdkLogLevel: info # debug is refused with credentials: the SDK would log them
      cacheDir: %q
      username: bridge-user
      password: %s
      accessKey: %s
      secretKey: %s
`, s.nacos, filepath.Join(dir, "nacos-sdk"),
			secret("nacos-password", "SECRET-nacos-pw-7f3a"),
			secret("nacos-accesskey", "SECRET-nacos-ak-19be"),
			secret("nacos-secretkey", "SECRET-nacos-sk-c04d"))
	}},
	{"zookeeper", func(s secretServers, dir string, secret func(key, value string) string) string {
		return fmt.Sprintf(`  - name: zk-secrets
    type: zookeeper
    zookeeper:
      servers: [%q]
      digest: %s
`, s.zk, secret("zk-digest", "bridge:SECRET-zk-digest-5e21"))
	}},
	{"consul", func(s secretServers, dir string, secret func(key, value string) string) string {
		return fmt.Sprintf(`  - name: consul-secrets
    type: consul
    consul:
      address: %q
      wait: 2s
      token: %s
`, s.consul, secret("consul-token", "SECRET-consul-token-3d9a"))
	}},
	{"eureka", func(s secretServers, dir string, secret func(key, value string) string) string {
		return fmt.Sprintf(`  - name: eureka-secrets
    type: eureka
    eureka:
      servers: [%q]
      interval: 1s
      username: bridge-user
      password: %s
`, s.eureka, secret("eureka-password", "SECRET-eureka-pw-a6e0"))
	}},
}

// TestSecretsNeverShown plants recognisable credentials for every registry type, runs the bridge
// at debug level against the real servers (the credentials may be refused: what matters is what
// the logging, status and rendering paths print), and checks that no value appears in the
// bridge's log, the registry SDKs' own log files, any admin page (enumerated from the admin index,
// so a page added later is covered), /metrics, or `mcp-bridge render` output.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	bin := suite.Build(t, bridgePackage)
	polaris := servers.StartPolaris(t)
	srv := secretServers{nacos: polaris.NacosAddr(), zk: servers.StartZooKeeper(t).Addr(),
		consul: servers.StartConsul(t, servers.ConsulOptions{}).Addr(), eureka: polaris.EurekaURL()}
	dir := t.TempDir()

	env := map[string]string{}
	var values, sources []string
	secret := func(key, value string) string {
		values = append(values, value)
		if len(values)%2 == 1 {
			path := filepath.Join(dir, key)
			if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sources = append(sources, path)
			return fmt.Sprintf("{file: %q}", path)
		}
		name := "MCPB_TEST_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		env[name] = value
		sources = append(sources, name)
		return fmt.Sprintf("{env: %s}", name)
	}
	cfg := "log:\n  level: debug\nregistries:\n"
	for _, r := range secretRegistries {
		cfg += r.config(srv, dir, secret)
	}
	cfgFile := writeFile(t, dir, "mcp-bridge.yaml", cfg)

	// leaks reports which planted values (or, for "user:password" ones, the password) text holds.
	leaks := func(text string) []string {
		var out []string
		for _, v := range values {
			if strings.Contains(text, v) {
				out = append(out, v)
			} else if _, pw, ok := strings.Cut(v, ":"); ok && strings.Contains(text, pw) {
				out = append(out, v+" (password part)")
			}
		}
		return out
	}
	check := func(where, text string) {
		t.Helper()
		if l := leaks(text); len(l) > 0 {
			t.Errorf("%s shows credentials %q", where, l)
		}
	}

	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, ConfigFile: cfgFile, Env: env, Args: []string{"--log-level", "debug"}})
	time.Sleep(3 * time.Second) // a few polls, logins and their retries

	pages := adminPages(t, b.AdminAddr)
	for _, want := range []string{"/metrics", "/debug/registries"} {
		if !slices.Contains(pages, want) {
			t.Fatalf("the admin index lists %q, not %s", pages, want)
		}
	}
	for _, p := range append(pages, "/debug/resources?kind=ServiceEntry") {
		body := httpGet(t, "http://"+b.AdminAddr+p)
		check("admin page "+p, body)
		if p == "/debug/registries" {
			// The credentials were read: the page names where each comes from, never the value.
			for _, s := range sources {
				if !strings.Contains(body, s) {
					t.Errorf("/debug/registries does not name the credential source %s; was the credential configured?", s)
				}
			}
		}
	}

	// render: one read of every registry, printed; its log goes to stderr.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "render", "--config", cfgFile, "--log-level", "debug", "--timeout", "10s")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Logf("render: %v, %d bytes out, %d bytes log", err, out.Len(), errOut.Len())
	check("render output", out.String())
	check("render log", errOut.String())

	b.Stop(5 * time.Second) // shutdown logs too
	log := b.Log()
	if !strings.Contains(log, `level=DEBUG`) && !strings.Contains(log, `"level":"DEBUG"`) {
		t.Errorf("the bridge log has no debug lines; was it at debug level?\n%s", log)
	}
	check("bridge log", log)
	// Files the registry clients wrote (the Nacos SDK's log and cache).
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || slices.Contains(sources, path) || path == cfgFile {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check("file "+path, string(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// adminPages lists the paths the admin index page names (every line's first word starting "/").
func adminPages(t *testing.T, addr string) []string {
	t.Helper()
	var pages []string
	for _, line := range strings.Split(httpGet(t, "http://"+addr+"/debug/"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			pages = append(pages, f[0])
		}
	}
	return append(pages, "/", "/?format=json")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}
