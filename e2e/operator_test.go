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
	if len(rules) < 9 {
		t.Errorf("%d alert rules, want the 9 of docs/operations.md", len(rules))
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

// chromium runs Debian's headless Chromium with flags that keep it off the network and out of
// the user's profile, and returns its stdout.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (scripts/test.sh installs Debian's package): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestOperatorStatusPageInChromium opens the status page of a running bridge (a real ZooKeeper
// registry and a file registry, one MCP client connected) in headless Chromium: a screenshot is
// taken, and the page's text names every registry, the client, and the counts the JSON form
// reports; the JSON forms of the status and history pages parse.
func TestOperatorStatusPageInChromium(t *testing.T) {
	t.Parallel()
	b := operatorBridge(t)
	var ov struct {
		Registries []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			Services  int    `json:"services"`
			Instances int    `json:"instances"`
		} `json:"registries"`
		Clients []struct {
			NodeID string `json:"nodeId"`
		} `json:"clients"`
		ClientsTotal int `json:"clientsTotal"`
		Resources    []struct {
			Kind  string `json:"kind"`
			Count int    `json:"count"`
		} `json:"resources"`
		Invalid  []json.RawMessage `json:"invalid"`
		Warnings []json.RawMessage `json:"warnings"`
	}
	// Wait until the page has what the test asserts: the client, both registries' states (the
	// file registry failing since its file broke), an invalid resource and a warning.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := b.Admin(ctx, "/?format=json")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &ov); err != nil {
			t.Fatalf("status page JSON: %v\n%s", err, body)
		}
		states := map[string]string{}
		for _, r := range ov.Registries {
			states[r.Name] = r.State
		}
		if ov.ClientsTotal == 1 && states[zkRegistryName] == "synced" && states["shopfile"] == "failing" && len(ov.Invalid) > 0 && len(ov.Warnings) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status page JSON never showed the client, zk synced and shopfile failing:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, path := range []string{"/history?format=json", "/debug/registries"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := b.Admin(ctx, path)
		cancel()
		var v map[string]any
		if err != nil || json.Unmarshal(body, &v) != nil {
			t.Fatalf("%s: not JSON (%v):\n%.500s", path, err, body)
		}
		if path == "/history?format=json" && len(v["versions"].([]any)) == 0 {
			t.Errorf("history is empty after the first push")
		}
	}

	url := "http://" + b.AdminAddr + "/"
	// $MCP_BRIDGE_ARTIFACTS keeps the screenshot for a person to look at.
	dir := os.Getenv("MCP_BRIDGE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "status-page.png")
	start := time.Now()
	chromium(t, "--window-size=1280,1600", "--screenshot="+shot, url)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10<<10 {
		t.Fatalf("screenshot is not a PNG of a rendered page (%d bytes)", len(png))
	}
	dom := string(chromium(t, "--dump-dom", url))
	t.Logf("measure: chromium screenshot + DOM dump %v; screenshot %d KiB at %s", time.Since(start).Round(time.Millisecond), len(png)>>10, shot)
	want := []string{"Registries (2)", "Connected Istiods (1)", operatorNodeID, "ServiceEntry"}
	for _, r := range ov.Registries {
		want = append(want, ">"+r.Name+"<", ">"+r.State, fmt.Sprintf("<td>%d</td><td>%d</td>", r.Services, r.Instances))
	}
	for _, r := range ov.Resources {
		want = append(want, fmt.Sprintf("%s %d", r.Kind, r.Count))
	}
	want = append(want, fmt.Sprintf("Invalid resources (%d)", len(ov.Invalid)), fmt.Sprintf("Warnings (%d)", len(ov.Warnings)), "NACK", "in sync")
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("the page Chromium rendered lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
