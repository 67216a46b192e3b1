package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// What the Eureka scenario registers, and what Istio must make of it (docs/registries.md): a
// Eureka application ORDERS is the host "orders.eureka"; its plain port is "http", its enabled
// securePort "https"; only UP instances are endpoints, OUT_OF_SERVICE ones are not; every
// Eureka instance weighs 100. The server is PolarisMesh's Eureka API (docs/real-servers.md).
const (
	eurekaRegistryName = "eureka-e2e"
	eurekaOrdersHost   = "orders.eureka"
	eurekaInterval     = 300 * time.Millisecond
)

var eurekaHosts = []string{eurekaOrdersHost}

func TestEurekaThroughIstiod(t *testing.T) {
	t.Parallel()
	bin := suite.Build(t, "./cmd/mcp-bridge")
	suite.Cluster(t)
	p := servers.StartPolaris(t)
	url := p.EurekaURL()
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: fmt.Sprintf(`registries:
  - name: %s
    type: eureka
    eureka:
      servers: [%q]
      interval: %s
      timeout: 2s
`, eurekaRegistryName, url, eurekaInterval)})
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource(), {Address: servers.K8sAddress}}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})

	registeredAt := time.Now()
	eurekaRegister(t, url, "ORDERS", "o1", "127.0.0.31", "UP", true)
	// Every instance of the application enables its secure port: an application serves https
	// only then (docs/registries.md, Eureka ports).
	eurekaRegister(t, url, "ORDERS", "o2", "127.0.0.32", "UP", true)
	eurekaRegister(t, url, "ORDERS", "o3", "127.0.0.33", "DOWN", true)
	registered := map[string][]xdsview.Endpoint{
		outboundCluster(eurekaOrdersHost, 8080, ""): {{Address: "127.0.0.31:8080", Weight: 100}, {Address: "127.0.0.32:8080", Weight: 100}},
		outboundCluster(eurekaOrdersHost, 8443, ""): {{Address: "127.0.0.31:8443", Weight: 100}, {Address: "127.0.0.32:8443", Weight: 100}},
	}
	seen := waitOwnedClusters(t, view, eurekaHosts, "the Eureka registrations", registered, 30*time.Second)
	t.Logf("measure: Eureka registration -> sidecar CDS+EDS %v (delta interval %v; Polaris shows registrations ~1 s late)",
		seen.Sub(registeredAt).Round(time.Millisecond), eurekaInterval)

	// An operator takes o2 out of service: it leaves the endpoints; back in service, it returns.
	at := time.Now()
	eurekaDo(t, http.MethodPut, url+"/apps/ORDERS/o2/status?value=OUT_OF_SERVICE", nil)
	want := maps.Clone(registered)
	want[outboundCluster(eurekaOrdersHost, 8080, "")] = []xdsview.Endpoint{{Address: "127.0.0.31:8080", Weight: 100}}
	want[outboundCluster(eurekaOrdersHost, 8443, "")] = []xdsview.Endpoint{{Address: "127.0.0.31:8443", Weight: 100}}
	seen = waitOwnedClusters(t, view, eurekaHosts, "o2 out of service", want, 15*time.Second)
	t.Logf("measure: Eureka OUT_OF_SERVICE -> sidecar EDS %v", seen.Sub(at).Round(time.Millisecond))
	eurekaDo(t, http.MethodDelete, url+"/apps/ORDERS/o2/status?value=UP", nil)
	waitOwnedClusters(t, view, eurekaHosts, "o2 back in service", registered, 15*time.Second)

	// /debug/registries shows the server in use and the fetches.
	page := bridgeAdmin(t, b, "/debug/registries")
	for _, s := range []string{`"serverInUse"`, url, `"lastFullFetch"`, `"lastDelta"`, `"hashMismatches"`} {
		if !bytes.Contains(page, []byte(s)) {
			t.Errorf("/debug/registries does not show %s:\n%s", s, page)
		}
	}
}

// eurekaRegister registers an instance as Spring Cloud Netflix does: a JSON POST to /apps/<APP>
// with Jackson's port shape.
func eurekaRegister(t *testing.T, url, app, id, ip, status string, secure bool) {
	t.Helper()
	securePort := map[string]any{"$": 443, "@enabled": "false"}
	if secure {
		securePort = map[string]any{"$": 8443, "@enabled": "true"}
	}
	body, _ := json.Marshal(map[string]any{"instance": map[string]any{
		"instanceId": id, "hostName": ip, "app": app, "ipAddr": ip, "status": status, "overriddenStatus": "UNKNOWN",
		"port": map[string]any{"$": 8080, "@enabled": "true"}, "securePort": securePort,
		"dataCenterInfo": map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"vipAddress":     strings.ToLower(app), "metadata": map[string]string{"version": "v1"},
	}})
	eurekaDo(t, http.MethodPost, url+"/apps/"+app, body)
}

func eurekaDo(t *testing.T, method, url string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: HTTP %d", method, url, resp.StatusCode)
	}
}
