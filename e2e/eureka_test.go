package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
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
	eurekatest.SetStatus(t, url, "ORDERS", "o2", "OUT_OF_SERVICE")
	want := maps.Clone(registered)
	want[outboundCluster(eurekaOrdersHost, 8080, "")] = []xdsview.Endpoint{{Address: "127.0.0.31:8080", Weight: 100}}
	want[outboundCluster(eurekaOrdersHost, 8443, "")] = []xdsview.Endpoint{{Address: "127.0.0.31:8443", Weight: 100}}
	seen = waitOwnedClusters(t, view, eurekaHosts, "o2 out of service", want, 15*time.Second)
	t.Logf("measure: Eureka OUT_OF_SERVICE -> sidecar EDS %v", seen.Sub(at).Round(time.Millisecond))
	eurekatest.SetStatus(t, url, "ORDERS", "o2", "")
	waitOwnedClusters(t, view, eurekaHosts, "o2 back in service", registered, 15*time.Second)

	// /debug/registries shows the server in use and the fetches.
	page := bridgeAdmin(t, b, "/debug/registries")
	for _, s := range []string{`"serverInUse"`, url, `"lastFullFetch"`, `"lastDelta"`, `"hashMismatches"`} {
		if !bytes.Contains(page, []byte(s)) {
			t.Errorf("/debug/registries does not show %s:\n%s", s, page)
		}
	}
}

// eurekaRegister registers an instance as Spring Cloud Netflix does (eurekatest.Register): a JSON
// POST to /apps/<APP> with Jackson's port shape, plain port 8080, secure port 8443.
func eurekaRegister(t *testing.T, url, app, id, ip, status string, secure bool) {
	t.Helper()
	in := eurekatest.Instance{App: app, ID: id, IP: ip, Status: status, Port: 8080, VIP: strings.ToLower(app), Metadata: map[string]string{"version": "v1"}}
	if secure {
		in.SecurePort = 8443
	}
	eurekatest.Register(t, url, in)
}
