package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// operatorNodeID is the MCP client's node ID: what the status page must name.
const operatorNodeID = "sidecar~10.9.8.7~istiod-operator-e2e.istio-system~istio-system.svc.cluster.local"

// operatorBridge runs a bridge with a real ZooKeeper registry and a file registry, one MCP client
// connected (ACKing ServiceEntries, NACKing WorkloadEntries), and the events that make every
// metric family appear: a registry failure with protection engaged (the file registry's file
// broken), a rejected registry entry (a bad ZooKeeper provider URL), a NACK, and an MCP limit hit
// (a second stream past maxStreamsPerPeer: 1).
func operatorBridge(t *testing.T) *servers.Bridge {
	t.Helper()
	bin := suite.Build(t, "./cmd/mcp-bridge")
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	provider := zktest.Session(t, z.Addr())
	zktest.Create(t, provider, zktest.ProviderPath("/dubbo", zkGreeterIface, zkDubbo2URL(zkGreeterIface, "127.0.0.2")), []byte("127.0.0.2"), true)
	zktest.Create(t, admin, "/dubbo/com.example.Broken/providers/"+zktest.JavaURLEncode("dubbo://[not-a-host/com.example.Broken?interface=com.example.Broken"), nil, false)
	servicesFile := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(servicesFile, []byte(ordersServices), 0o600); err != nil {
		t.Fatal(err)
	}
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: fmt.Sprintf(`registries:
  - name: %s
    type: zookeeper
    zookeeper:
      servers: [%q]
      resyncInterval: 3s
  - name: shopfile
    type: file
    file: {path: %s}
mcp:
  limits:
    maxStreamsPerPeer: 1
`, zkRegistryName, z.Addr(), servicesFile)})

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cc, err := grpc.NewClient(b.MCPAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
	stream, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seURL, weURL string
	for _, u := range istio.PilotTypeURLs(istioMinorForOperator) {
		switch {
		case strings.HasSuffix(u, "/ServiceEntry"):
			seURL = u
		case strings.HasSuffix(u, "/WorkloadEntry"):
			weURL = u
		}
	}
	node := &core.Node{Id: operatorNodeID}
	for _, u := range []string{seURL, weURL} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: u}); err != nil {
			t.Fatal(err)
		}
	}
	// ACK every ServiceEntry response, NACK every WorkloadEntry one, until the test ends.
	answered := make(chan struct{})
	go func() {
		first := true
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if first {
				close(answered)
				first = false
			}
			req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(), VersionInfo: resp.GetVersionInfo()}
			if resp.GetTypeUrl() == weURL {
				req.VersionInfo = ""
				req.ErrorDetail = &rpcstatus.Status{Code: 3, Message: "operator e2e rejects WorkloadEntries"}
			}
			if stream.Send(req) != nil {
				return
			}
		}
	}()
	select {
	case <-answered:
	case <-time.After(30 * time.Second):
		t.Fatal("the MCP client got no response within 30s")
	}
	// A second stream from the same address is past maxStreamsPerPeer (opened once the first
	// is served, so the first holds the slot).
	second, err := ads.StreamAggregatedResources(ctx)
	if err == nil {
		_ = second.Send(&discoveryv3.DiscoveryRequest{Node: &core.Node{Id: "sidecar~10.9.8.8~second.istio-system~x"}, TypeUrl: seURL})
		_, _ = second.Recv()
	}
	// The file registry's file breaks: the registry fails and protection holds its services.
	if err := os.WriteFile(servicesFile, []byte("services: [this is not: valid"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// istioMinorForOperator is the Istio minor whose type URLs the test client subscribes with.
const istioMinorForOperator = 31

const ordersServices = `
services:
  - name: orders
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.1.0.1, ports: {http: 8080}}
      - {address: 10.1.0.2, ports: {http: 8080}}
  # A host name among IP addresses: served without it (a warning).
  - name: payments
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.2.0.1, ports: {http: 8080}}
      - {address: payments-2.example.com, ports: {http: 8080}}
  # A name too long for a DNS label: not emitted (an invalid resource).
  - name: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
    ports: [{name: http, protocol: http}]
    instances:
      - {address: 10.3.0.1, ports: {http: 8080}}
`

// waitMetrics polls /metrics until every name is exposed (or the timeout), and returns the names
// exposed.
func waitMetrics(t *testing.T, b *servers.Bridge, names []string, timeout time.Duration) (exposed map[string]bool, missing []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := b.Admin(ctx, "/metrics")
		cancel()
		exposed = map[string]bool{}
		if err == nil {
			for _, l := range strings.Split(string(body), "\n") {
				if l == "" || l[0] == '#' {
					continue
				}
				if i := strings.IndexAny(l, "{ "); i > 0 {
					exposed[l[:i]] = true
				}
			}
		}
		missing = missing[:0]
		for _, n := range names {
			if !exposed[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return exposed, missing
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var metricName = regexp.MustCompile(`\bmcp_bridge_[a-z0-9_]+`)

// TestOperatorDashboardAndAlertMetricsExist: every metric the Grafana dashboard and the alert
// rules query is exposed on /metrics of a running bridge with a ZooKeeper and a file registry;
// the rules file is a valid rule file (promtool check rules when promtool is on PATH, else a
// schema check); the Helm chart's copies are the same files.
func TestOperatorDashboardAndAlertMetricsExist(t *testing.T) {
	t.Parallel()
	root := servers.RepoRoot(t)
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dashJSON := read("deploy/grafana/mcp-bridge-dashboard.json")
	if err := json.Unmarshal(dashJSON, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	rulesYAML := read("deploy/prometheus/mcp-bridge-rules.yaml")
	rules := checkRuleFile(t, rulesYAML)
	for _, r := range rules {
		exprs = append(exprs, r.Expr)
	}
	if len(rules) < 8 {
		t.Errorf("%d alert rules, want the 8 of docs/operations.md", len(rules))
	}
	ops := string(read("docs/operations.md"))
	for _, r := range rules {
		if !strings.Contains(ops, "### "+r.Alert+"\n") {
			t.Errorf("alert %s has no runbook section in docs/operations.md", r.Alert)
		}
	}
	for rel, copyRel := range map[string]string{
		"deploy/grafana/mcp-bridge-dashboard.json": "deploy/helm/mcp-bridge/files/mcp-bridge-dashboard.json",
		"deploy/prometheus/mcp-bridge-rules.yaml":  "deploy/helm/mcp-bridge/files/mcp-bridge-rules.yaml",
	} {
		if !bytes.Equal(read(rel), read(copyRel)) {
			t.Errorf("%s differs from %s: copy it into the chart", copyRel, rel)
		}
	}
	want := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			want[n] = true
		}
	}
	names := slices.Sorted(maps.Keys(want))
	if len(names) < 15 {
		t.Fatalf("only %d metric names found in the dashboard and rules: %v", len(names), names)
	}

	b := operatorBridge(t)
	_, missing := waitMetrics(t, b, names, 60*time.Second)
	if len(missing) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		clients, _ := b.Admin(ctx, "/debug/clients")
		t.Fatalf("queried by the dashboard or the alert rules but not on /metrics: %v\n/debug/clients: %s", missing, clients)
	}
	t.Logf("all %d metric names the dashboard and the rules query are exposed", len(names))
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// checkRuleFile validates a Prometheus rule file: with promtool when it is on PATH, and always
// against the rule file schema (groups with unique names, alerts with a name, an expression,
// a valid duration, a severity, a summary and a runbook_url).
func checkRuleFile(t *testing.T, content []byte) []alertRule {
	t.Helper()
	if promtool, err := exec.LookPath("promtool"); err == nil {
		f := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(f, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	}
	var file struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(content, &file); err != nil {
		t.Fatalf("rule file: %v", err)
	}
	var all []alertRule
	seen := map[string]bool{}
	for _, g := range file.Groups {
		if g.Name == "" || seen[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		seen[g.Name] = true
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || r.Expr == "":
				t.Errorf("rule %+v: alert and expr are required", r)
			case r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical":
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["runbook_url"], "docs/operations.md#"+strings.ToLower(r.Alert)):
				t.Errorf("%s: needs a summary and a runbook_url to docs/operations.md#%s", r.Alert, strings.ToLower(r.Alert))
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			all = append(all, r)
		}
	}
	return all
}
