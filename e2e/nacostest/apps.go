// Package nacostest holds helpers for tests that drive a real Nacos-protocol server (Polaris) as
// applications do, and that watch what an adapter sends: application processes with their own
// nacos-sdk-go clients (as Spring Cloud Alibaba and Dubbo create one per process), heart-beating
// Nacos 1.x style instances, and checks of the services an adapter sends (the recording sink is
// e2e/testkit's). It is for tests only:
// the nacos adapter's own tests and its pipeline tests. It must not import registry/nacos, whose
// in-package tests use it.
package nacostest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// The Nacos protocol's defaults an application relies on when it names none.
const (
	publicNamespace = "public"
	defaultGroup    = "DEFAULT_GROUP"
	defaultCluster  = "DEFAULT"
)

// NewApp is an application process: its own naming client for namespace ("public" or an id) of
// the server at addr (host:port).
func NewApp(t testing.TB, addr, namespace string) naming_client.INamingClient {
	t.Helper()
	cc, sc := sdkClientConfig(t, addr, namespace)
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: sc})
	if err != nil {
		t.Fatalf("creating application naming client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

// NewConfigApp is an application process's config client (Dubbo publishes its interface ->
// application mappings with one).
func NewConfigApp(t testing.TB, addr, namespace string) config_client.IConfigClient {
	t.Helper()
	cc, sc := sdkClientConfig(t, addr, namespace)
	c, err := clients.NewConfigClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: sc})
	if err != nil {
		t.Fatalf("creating application config client: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

func sdkClientConfig(t testing.TB, addr, namespace string) (constant.ClientConfig, []constant.ServerConfig) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("server address %q: %v", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatalf("server address %q: port: %v", addr, err)
	}
	// The SDK expects "" for the public namespace, which every Nacos 2.x version (and Polaris)
	// reads as the default namespace.
	if namespace == publicNamespace {
		namespace = ""
	}
	dir := t.TempDir()
	return constant.ClientConfig{
			NamespaceId: namespace, TimeoutMs: 3000, NotLoadCacheAtStart: true,
			CacheDir: filepath.Join(dir, "cache"), LogDir: filepath.Join(dir, "log"), LogLevel: "warn",
		}, []constant.ServerConfig{
			{IpAddr: host, Port: port},
		}
}

// Register registers an instance (weight 1 when unset), retrying a refused first attempt.
func Register(t testing.TB, c naming_client.INamingClient, p vo.RegisterInstanceParam) {
	t.Helper()
	if p.Weight == 0 {
		p.Weight = 1
	}
	// A client's first request can race its own connection-time replay of the registration, and
	// Polaris then refuses one of the two as "the same instance request": try again.
	var ok bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if ok, err = c.RegisterInstance(p); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registering %s %s:%d: ok=%v err=%v", p.ServiceName, p.Ip, p.Port, ok, err)
}

// v1 calls the Nacos v1 HTTP API, as Nacos 1.x clients (and heart-beating v2 HTTP clients) do.
func v1(addr, method, path string, form url.Values) error {
	req, err := http.NewRequest(method, "http://"+addr+"/nacos"+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, body)
	}
	return nil
}

// Heartbeats registers an ephemeral instance of the public namespace's default group over the v1
// HTTP API and beats for it until stop is closed: the instance's health then rests on the beats,
// as for Nacos 1.x clients.
func Heartbeats(t testing.TB, addr, service, ip string, port int, stop <-chan struct{}) {
	t.Helper()
	if err := v1(addr, http.MethodPost, "/v1/ns/instance", url.Values{
		"serviceName": {service}, "ip": {ip}, "port": {fmt.Sprint(port)}, "ephemeral": {"true"},
		"weight": {"1"}, "healthy": {"true"}, "enabled": {"true"}, "metadata": {"{}"},
	}); err != nil {
		t.Fatalf("registering a heart-beating instance: %v", err)
	}
	beat, _ := json.Marshal(map[string]any{"serviceName": defaultGroup + "@@" + service, "ip": ip, "port": port, "cluster": defaultCluster})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = v1(addr, http.MethodPut, "/v1/ns/instance/beat", url.Values{"serviceName": {defaultGroup + "@@" + service}, "beat": {string(beat)}})
			}
		}
	}()
}
