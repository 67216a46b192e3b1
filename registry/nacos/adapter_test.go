package nacos

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// fakeConfig is a configuration for an adapter on fake clients (the server address is unused
// unless a console API is involved).
func fakeConfig(t testing.TB) Config {
	return Config{
		Servers:        []string{"127.0.0.1:1"},
		PollInterval:   100 * time.Millisecond,
		RecoveryDelay:  200 * time.Millisecond,
		ResyncInterval: -1,
		Timeout:        time.Second,
		CacheDir:       t.TempDir(),
	}
}

// TestRealNacosBehaviours covers, on a fake client, what real Nacos does and Polaris does not
// (see fakeNaming): grouped names and paging by count, float weights, pushes in every group, a
// pushed drop to zero instances.
func TestRealNacosBehaviours(t *testing.T) {
	f := newFakeFactory(PublicNamespace)
	n := f.ns(PublicNamespace)
	n.set(DefaultGroup, "a",
		inst("10.0.0.1", 8080, 0.5, nil), inst("10.0.0.2", 8080, 1.5, nil),
		inst("10.0.0.3", 8080, 0.001, nil), inst("10.0.0.4", 8080, 0, nil))
	n.set(DefaultGroup, "b", inst("10.0.1.1", 8080, 1, nil))
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 1, nil))
	n.set("G", "d", inst("10.0.3.1", 9090, 1, map[string]string{"secure": "true"}))

	cfg := fakeConfig(t)
	cfg.Groups = []string{DefaultGroup, "G"}
	cfg.PageSize = 2 // three services in DEFAULT_GROUP: two pages
	r := startAdapter(t, cfg, f)
	r.Sink.WaitSynced(t, 5*time.Second)

	var got []string
	for _, s := range r.Sink.Services() {
		got = append(got, s.Key().String())
	}
	want := []string{"application:public/DEFAULT_GROUP/a", "application:public/DEFAULT_GROUP/b", "application:public/DEFAULT_GROUP/c", "application:public/G/d"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("services %q, want %q", got, want)
	}
	if err := nacostest.InstancesAre("10.0.0.1:8080/50/true/true", "10.0.0.2:8080/150/true/true", "10.0.0.3:8080/1/true/true", "10.0.0.4:8080/0/true/true")(r.Sink.Get(nacostest.AppKey("a"))); err != nil {
		t.Errorf("float weights: %v", err)
	}

	// A malformed instance is rejected once, not at every push, and accepted when it goes.
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 1, nil), inst("", 8080, 1, nil))
	r.Sink.WaitService(t, 2*time.Second, nacostest.AppKey("c"), nacostest.InstancesAre("10.0.2.1:8080/100/true/true"))
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 1, map[string]string{"v": "2"}), inst("", 8080, 1, nil))
	testkit.WaitFor(t, 2*time.Second, "the second push", func() error {
		if r.Sink.Get(nacostest.AppKey("c")).Instances[0].Labels["v"] != "2" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if rejects, n := r.Sink.Rejects(); n != 1 || rejects["nacos:public/DEFAULT_GROUP/c#:8080"] != "bad-address" {
		t.Errorf("%d Reject calls, rejects %v; want the one malformed instance once", n, rejects)
	}
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 1, nil))
	testkit.WaitFor(t, 2*time.Second, "the Accept", func() error {
		if rejects, _ := r.Sink.Rejects(); len(rejects) != 0 {
			return fmt.Errorf("rejects %v", rejects)
		}
		return nil
	})

	// A push in a non-default group arrives without any re-read.
	subCalls := n.subCalls
	dKey := registry.Key{Kind: registry.KindApplication, Namespace: PublicNamespace, Group: "G", Name: "d"}
	n.set("G", "d", inst("10.0.3.1", 9090, 2, map[string]string{"secure": "true"}))
	r.Sink.WaitService(t, 2*time.Second, dKey, nacostest.InstancesAre("10.0.3.1:9090/200/true/true"))
	time.Sleep(3 * cfg.PollInterval)
	if n.subCalls != subCalls {
		t.Errorf("flavor nacos re-subscribed (%d -> %d Subscribe calls): pushes are enough", subCalls, n.subCalls)
	}

	// A service dropping to zero instances is sent empty (it is still registered)...
	n.set(DefaultGroup, "b")
	r.Sink.WaitService(t, 2*time.Second, nacostest.AppKey("b"), nacostest.InstancesAre())
	// ...and deleted when Nacos removes the service itself.
	n.remove(DefaultGroup, "b")
	testkit.WaitFor(t, 2*time.Second, "b to be deleted", func() error {
		if r.Sink.Get(nacostest.AppKey("b")) != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if n.subscribed() != 3 {
		t.Errorf("%d subscriptions left, want 3 (b unsubscribed)", n.subscribed())
	}

	// The server goes away: Fail once, nothing removed. Changes made meanwhile (no pushes) are
	// read after recovery and sent whole.
	before := r.Sink.NEvents()
	n.setDown(true)
	testkit.WaitFor(t, 2*time.Second, "Fail", func() error {
		if r.Sink.Count("fail") == 0 {
			return fmt.Errorf("no Fail yet")
		}
		return nil
	})
	n.set(DefaultGroup, "c", inst("10.0.2.1", 8080, 3, nil))
	time.Sleep(5 * cfg.PollInterval)
	for _, e := range r.Sink.EventsSince(before) {
		if e.Op != "fail" {
			t.Errorf("while down: %s", e.Op)
		}
	}
	if r.Sink.Count("fail") != 1 {
		t.Errorf("%d Fail calls for one failure, want 1", r.Sink.Count("fail"))
	}
	n.setDown(false)
	testkit.WaitFor(t, 3*time.Second, "the recovery Replace", func() error {
		if r.Sink.Count("replace") < 2 {
			return fmt.Errorf("no second Replace yet")
		}
		return nil
	})
	if err := nacostest.InstancesAre("10.0.2.1:8080/300/true/true")(r.Sink.Get(nacostest.AppKey("c"))); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if len(r.Sink.Services()) != 3 {
		t.Errorf("after recovery %d services, want 3", len(r.Sink.Services()))
	}
}

// TestUnreachableAtStart: a server down at start is a failure; when it comes up the first sync
// follows at once (nothing was served that applications must re-register for).
func TestUnreachableAtStart(t *testing.T) {
	f := newFakeFactory(PublicNamespace)
	n := f.ns(PublicNamespace)
	n.set(DefaultGroup, "a", inst("10.0.0.1", 8080, 1, nil))
	n.setDown(true)
	cfg := fakeConfig(t)
	cfg.RecoveryDelay = time.Hour
	r := startAdapter(t, cfg, f)
	testkit.WaitFor(t, 2*time.Second, "Fail", func() error {
		if r.Sink.Count("fail") == 0 {
			return fmt.Errorf("no Fail")
		}
		return nil
	})
	n.setDown(false)
	r.Sink.WaitSynced(t, 2*time.Second)
	r.Sink.WaitService(t, time.Second, nacostest.AppKey("a"), nacostest.InstancesAre("10.0.0.1:8080/100/true/true"))
}

// TestNacosConsole covers namespaces "*" and groups "*", which use Nacos's HTTP console API
// (Polaris has neither): the console fake answers as Nacos 2.x does, behind login and TLS.
func TestNacosConsole(t *testing.T) {
	var logins, tokenMisses atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /nacos/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		logins.Add(1)
		if r.FormValue("username") != "nacos" || r.FormValue("password") != "s3cret" {
			http.Error(w, "unknown user!", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, `{"accessToken":"tok-123","tokenTtl":18000,"globalAdmin":true,"username":"nacos"}`)
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("accessToken") != "tok-123" {
				tokenMisses.Add(1)
				http.Error(w, "token invalid", http.StatusForbidden)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /nacos/v1/console/namespaces", authed(func(w http.ResponseWriter, r *http.Request) {
		// Before Nacos 2.4 the public namespace has the id "".
		fmt.Fprint(w, `{"code":200,"message":null,"data":[{"namespace":"","namespaceShowName":"public","quota":200,"configCount":0,"type":0},{"namespace":"dev","namespaceShowName":"dev","quota":200,"configCount":0,"type":2}]}`)
	}))
	catalog := map[string][]map[string]string{
		"public": {{"name": "a", "groupName": "DEFAULT_GROUP"}, {"name": "b", "groupName": "G1"}, {"name": "c", "groupName": "G2"}},
		"dev":    {{"name": "a", "groupName": "G1"}},
	}
	mux.HandleFunc("GET /nacos/v1/ns/catalog/services", authed(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		list := catalog[q.Get("namespaceId")]
		var page, size int
		fmt.Sscan(q.Get("pageNo"), &page)
		fmt.Sscan(q.Get("pageSize"), &size)
		from := min((page-1)*size, len(list))
		to := min(from+size, len(list))
		_ = json.NewEncoder(w).Encode(map[string]any{"count": len(list), "serviceList": list[from:to]})
	}))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newFakeFactory()
	f.ns(PublicNamespace).set(DefaultGroup, "a", inst("10.0.0.1", 80, 1, nil))
	f.ns(PublicNamespace).set("G1", "b", inst("10.0.0.2", 80, 1, nil))
	f.ns(PublicNamespace).set("G2", "c", inst("10.0.0.3", 80, 1, nil))
	f.ns("dev").set("G1", "a", inst("10.1.0.1", 80, 1, nil))

	t.Setenv("TEST_NACOS_PASSWORD", "s3cret")
	cfg := fakeConfig(t)
	cfg.Servers = []string{strings.TrimPrefix(srv.URL, "https://")}
	cfg.Namespaces, cfg.Groups = []string{All}, []string{All}
	cfg.PageSize = 2
	cfg.Username, cfg.Password = "nacos", registry.Secret{Env: "TEST_NACOS_PASSWORD"}
	cfg.TLS = TLS{Enabled: true, CAFile: caFile}
	r := startAdapter(t, cfg, f)
	r.Sink.WaitSynced(t, 5*time.Second)

	var got []string
	for _, s := range r.Sink.Services() {
		got = append(got, s.Key().String())
	}
	want := []string{"application:dev/G1/a", "application:public/DEFAULT_GROUP/a", "application:public/G1/b", "application:public/G2/c"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("services %q, want %q", got, want)
	}
	time.Sleep(3 * cfg.PollInterval)
	if logins.Load() != 1 || tokenMisses.Load() != 0 {
		t.Errorf("%d logins and %d requests without the token; want one login, its token reused", logins.Load(), tokenMisses.Load())
	}

	d, err := json.Marshal(r.a.Describe())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(d), "s3cret") || strings.Contains(string(d), "tok-123") {
		t.Errorf("Describe shows a credential: %s", d)
	}
	if !strings.Contains(string(d), "env:TEST_NACOS_PASSWORD") {
		t.Errorf("Describe does not say where the password comes from: %s", d)
	}

	// A wrong password: the registry fails, naming the cause, never the password.
	t.Setenv("TEST_NACOS_PASSWORD", "wrong-password")
	c, err := newConsole(cfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.namespaces(t.Context())
	if err == nil || !strings.Contains(err.Error(), "check username and password") || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("bad login error = %v", err)
	}
	// A server without the console API (Polaris): said so.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	nc := fakeConfig(t)
	nc.Servers = []string{strings.TrimPrefix(plain.URL, "http://")}
	c, _ = newConsole(nc.WithDefaults())
	if _, err := c.namespaces(t.Context()); err == nil || !strings.Contains(err.Error(), "not served") {
		t.Errorf("missing console API error = %v", err)
	}
}

// TestSDKClientConfig checks what the SDK is told: the cache is never loaded, empty services are
// reported, files stay under the cache directory, TLS comes from the configuration only, and
// secrets are read at connect time.
func TestSDKClientConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TEST_NACOS_SK", "sk-value")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Servers: []string{"nacos-0:8848", "nacos-1:9848"}, Username: "u", Password: registry.Secret{File: pw},
		AccessKey: registry.Secret{Env: "TEST_NACOS_SK"}, SecretKey: registry.Secret{Env: "TEST_NACOS_SK"},
		TLS: TLS{Enabled: true, CAFile: "/ca.pem"},
	}.WithDefaults()
	f := &sdkFactory{cfg: cfg, cacheDir: dir}
	cc, err := f.clientConfig("dev")
	if err != nil {
		t.Fatal(err)
	}
	if !cc.NotLoadCacheAtStart || !cc.UpdateCacheWhenEmpty || !cc.DisableUseSnapShot {
		t.Errorf("cache flags: NotLoadCacheAtStart=%v UpdateCacheWhenEmpty=%v DisableUseSnapShot=%v", cc.NotLoadCacheAtStart, cc.UpdateCacheWhenEmpty, cc.DisableUseSnapShot)
	}
	if !strings.HasPrefix(cc.CacheDir, dir) || !strings.HasPrefix(cc.LogDir, dir) || cc.LogLevel != "warn" {
		t.Errorf("cache %q, log %q at %q: want both under %q, level warn", cc.CacheDir, cc.LogDir, cc.LogLevel, dir)
	}
	if cc.NamespaceId != "dev" || cc.Username != "u" || cc.Password != "pw-value" || cc.AccessKey != "sk-value" {
		t.Errorf("namespace/credentials not passed on: %q %q", cc.NamespaceId, cc.Username)
	}
	if !cc.TLSCfg.Appointed || !cc.TLSCfg.Enable || cc.TLSCfg.CaFile != "/ca.pem" {
		t.Errorf("TLS config %+v", cc.TLSCfg)
	}
	if pub, _ := f.clientConfig(PublicNamespace); pub.NamespaceId != "" {
		t.Errorf("public namespace id %q, want \"\"", pub.NamespaceId)
	}
	sc := f.serverConfigs()
	if len(sc) != 2 || sc[1].IpAddr != "nacos-1" || sc[1].Port != 9848 || sc[1].GrpcPort != 10848 || sc[0].Scheme != "https" {
		t.Errorf("server configs %+v", sc)
	}
	t.Setenv("TEST_NACOS_SK", "")
	if _, err := f.clientConfig("dev"); err == nil || strings.Contains(err.Error(), "pw-value") {
		t.Errorf("missing secret: err = %v", err)
	}
	if d := defaultCacheDir("../x y"); filepath.Dir(d) != filepath.Join(os.TempDir(), "mcp-bridge", "nacos") {
		t.Errorf("default cache dir %q", d)
	}
}
