package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/admin"
	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
)

// configMapDir lays out a configuration as a Kubernetes ConfigMap volume does: dir/config.yaml ->
// ..data/config.yaml, ..data -> a timestamped directory. update swaps ..data atomically, the only
// change the watcher is told about.
type configMapDir struct {
	t   *testing.T
	dir string
	n   int
}

func newConfigMapDir(t *testing.T, content string) *configMapDir {
	d := &configMapDir{t: t, dir: t.TempDir()}
	d.update(content)
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), d.path()); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *configMapDir) path() string { return filepath.Join(d.dir, "config.yaml") }

func (d *configMapDir) update(content string) {
	d.t.Helper()
	d.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d", d.n)
	if err := os.Mkdir(filepath.Join(d.dir, ts), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, ts, "config.yaml"), []byte(content), 0o600); err != nil {
		d.t.Fatal(err)
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
}

func writeServices(t *testing.T, dir, name, service, addr string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	doc := fmt.Sprintf("services:\n  - name: %s\n    ports: [{name: http, protocol: http}]\n    instances:\n      - {address: %s, ports: {http: 8080}}\n", service, addr)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHotReload changes the configuration of a running bridge with a real ZooKeeper registry and
// a connected MCP client: a file registry is added and another removed, and a translate option
// changes, through a ConfigMap-style symlink swap. The new resources arrive on the same stream,
// the ZooKeeper session is the same session, the VIP of the ZooKeeper service stays, the removed
// registry's services go. A broken configuration then changes nothing and is reported on
// /debug/config and in the metrics.
func TestHotReload(t *testing.T) {
	z := servers.StartZooKeeper(t)
	zkAdmin := zktest.Session(t, z.Addr())
	zktest.MkdirAll(t, zkAdmin, "/dubbo/com.example.Live/providers", nil)
	zktest.Create(t, zkAdmin, zktest.ProviderPath("/dubbo", "com.example.Live",
		"dubbo://10.6.0.1:20880/com.example.Live?application=live&interface=com.example.Live&side=provider"), nil, false)
	dir := t.TempDir()
	legacy := writeServices(t, dir, "legacy.yaml", "legacy", "10.1.0.1")
	shop := writeServices(t, dir, "shop.yaml", "orders", "10.2.0.1")

	zkBlock := fmt.Sprintf("  - name: zk\n    type: zookeeper\n    zookeeper: {servers: [%q], resyncInterval: -1s}\n", z.Addr())
	first := "debounce: {quiet: 10ms}\nregistries:\n" + zkBlock +
		fmt.Sprintf("  - name: old\n    type: file\n    file: {path: %s}\n", legacy)
	second := "debounce: {quiet: 10ms}\ntranslate: {workloadTLSMode: istio}\nregistries:\n" + zkBlock +
		fmt.Sprintf("  - name: shop\n    type: file\n    file: {path: %s}\n", shop)
	cm := newConfigMapDir(t, first)
	load := func() (*config.Config, error) { return config.Load(cm.path()) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}

	p, err := pipeline.New(cfg, pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := mcpclient.Serve(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	w := p.Watch(cm.path(), load)
	w.PollInterval = time.Hour // the symlink swap's notification must do it
	go func() { w.Run(ctx); close(watched) }()
	t.Cleanup(func() { cancel(); <-watched })
	page := httptest.NewServer(admin.Handler(admin.Sources{Config: func() any { return p.ConfigStatus() }, Gatherer: p.Gatherer()}))
	t.Cleanup(page.Close)

	const live, orders, legacyHost = "com.example.live", "orders.file", "legacy.file"
	c.WaitFor(t, 20*time.Second, "the first state", func(c *mcpclient.Client) error {
		for _, h := range []string{live, legacyHost} {
			if c.Entry(h) == nil {
				return fmt.Errorf("%s not served (stream: %v)", h, c.Err())
			}
		}
		return nil
	})
	vip := c.Entry(live).GetAddresses()
	session := zkSession(t, p)

	cm.update(second)
	c.WaitFor(t, 20*time.Second, "the reloaded state", func(c *mcpclient.Client) error {
		if c.Entry(orders) == nil {
			return fmt.Errorf("%s not served (stream: %v)", orders, c.Err())
		}
		if c.Entry(legacyHost) != nil {
			return fmt.Errorf("%s of the removed registry still served", legacyHost)
		}
		if tls := c.Entry(live).GetEndpoints()[0].GetLabels()["security.istio.io/tlsMode"]; tls != "istio" {
			return fmt.Errorf("%s endpoint tlsMode %q, want istio (translate option not applied)", live, tls)
		}
		return nil
	})
	if err := c.Err(); err != nil {
		t.Fatalf("the MCP stream ended during the reload: %v", err)
	}
	if se := c.Entry(live); !equal(se.GetAddresses(), vip) {
		t.Errorf("VIP of %s moved from %v to %v", live, vip, se.GetAddresses())
	}
	if got := zkSession(t, p); got != session {
		t.Errorf("ZooKeeper session %s became %s: the unchanged registry was restarted", session, got)
	}
	if _, body := get(t, page.URL+"/debug/config"); !strings.Contains(body, `"result": "success"`) || !strings.Contains(body, shop) {
		t.Errorf("/debug/config after the reload:\n%s", body)
	}

	// A broken configuration: rejected whole, nothing changes, the error is shown.
	cm.update(second + "  - name: broken\n    type: file\n    file: {path: x, bogus: 1}\n")
	testkit.WaitFor(t, 10*time.Second, "the broken configuration to be reported", func() error {
		if _, body := get(t, page.URL+"/debug/config"); !strings.Contains(body, `"result": "failure"`) || !strings.Contains(body, "bogus") {
			return fmt.Errorf("/debug/config:\n%s", body)
		}
		return nil
	})
	if _, body := get(t, page.URL+"/metrics"); !strings.Contains(body, `mcp_bridge_config_reloads_total{result="failure"} 1`) ||
		!strings.Contains(body, `mcp_bridge_config_reloads_total{result="success"} 1`) {
		t.Errorf("reload metrics:\n%s", grep(body, "mcp_bridge_config"))
	}
	if names := p.Config().RegistryNames(); !equal(names, []string{"zk", "shop"}) {
		t.Errorf("running registries %v after a rejected configuration, want [zk shop]", names)
	}
	time.Sleep(100 * time.Millisecond)
	if se, err := c.Entry(orders), c.Err(); se == nil || err != nil {
		t.Errorf("%s gone after a rejected configuration (stream: %v)", orders, err)
	}
	if got := zkSession(t, p); got != session {
		t.Errorf("ZooKeeper session %s became %s after a rejected configuration", session, got)
	}
}

// zkSession is the ZooKeeper adapter's session id, from /debug/registries' adapter details.
func zkSession(t *testing.T, p *pipeline.Pipeline) string {
	t.Helper()
	var id string
	testkit.WaitFor(t, 10*time.Second, "a ZooKeeper session", func() error {
		adapters := p.Registries().(map[string]any)["adapters"].(map[string]any)
		d, _ := adapters["zk"].(map[string]any)
		id, _ = d["sessionId"].(string)
		if id == "" {
			return fmt.Errorf("no session id in %v", d)
		}
		return nil
	})
	return id
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
