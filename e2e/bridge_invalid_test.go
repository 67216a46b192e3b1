package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/idna"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// istiodDropLines are the warnings Istiod's MCP client (pkg/adsc handleMCP) logs when it drops a
// resource it received: its memory store validates every object and refuses invalid ones, yet the
// client ACKs the response anyway, so these lines are the only trace of a drop.
var istiodDropLines = []string{
	"Error adding a new resource",
	"Error updating an existing resource",
	"Error unmarshalling received MCP config",
	"Invalid data:",
}

// TestBridgeZeroInvalid is issue 3 test 3: the bridge's validation and Istiod's agree. The
// services file (testdata/odd-services.yaml) is full of input Istio would reject as written; every
// resource the bridge says it sends must be in Istiod's config store with the same version,
// Istiod must log no drop, and what the bridge reports invalid must not be in Istiod at all.
func TestBridgeZeroInvalid(t *testing.T) {
	services, err := filepath.Abs(filepath.Join("testdata", "odd-services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	punycode, err := idna.Punycode.ToASCII("订单服务")
	if err != nil {
		t.Fatal(err)
	}
	// The hosts that must reach Istiod, by the naming rules (docs/registries.md#hosts and
	// translate.HostTemplates): "<name>.file" lower-cased, Punycode for non-ASCII; a Dubbo
	// interface "<interface>-<group>-<version>" with separators made '-'; Odd-Labels and
	// odd-labels share a host; multi-alias's aliases com.Example.A and com.example.a share one and
	// "!!" has none.
	wantHosts := []string{
		"123.file", "com.example.a", "com.example.odd.api-g-1-x-1-0-0-snapshot", "conflicting-ports.file",
		"dual-stack.file", "hostname-svc.file", "multi-alias.file", "odd-labels.file", punycode + ".file",
	}
	// The two services no valid host can be made of.
	wantInvalid := []string{"odd/application:--", "odd/application:" + strings.Repeat("a", 78)}

	for _, mode := range []string{"workloadEntry", "inline"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			// Every label kept (labels.mode all): the odd labels are what this test sends Istiod.
			b := startBridge(t, fileRegistryConfig("odd", services, "translate: {endpointMode: "+mode+", labels: {mode: all}}\n"))
			cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
			view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})

			sent := bridgeResources(t, b, "ServiceEntry", "WorkloadEntry")
			if len(sent) == 0 {
				t.Fatal("the bridge serves nothing")
			}
			var gotHosts []string
			for _, o := range sent {
				gotHosts = append(gotHosts, o.hosts()...)
			}
			slices.Sort(gotHosts)
			if !slices.Equal(gotHosts, wantHosts) {
				t.Errorf("the bridge serves hosts %v, want %v", gotHosts, wantHosts)
			}

			// Istiod is ready, so it has processed the bridge's first response; the sidecar view
			// then shows a cluster per host, which also proves Istiod built config from them.
			view.WaitFor(t, "a cluster for every host", 20*time.Second, func(s *xdsview.Snapshot) error {
				for _, h := range wantHosts {
					if !slices.ContainsFunc(xdsview.ClusterNames(s, "outbound|"), func(c string) bool { return strings.HasSuffix(c, "||"+h) }) {
						return fmt.Errorf("no cluster for host %s", h)
					}
				}
				return nil
			})
			stored := inNamespace(configz(t, cp.Istiod, "ServiceEntry", "WorkloadEntry"), "odd")
			if d := diffVersions(versions(sent), versions(stored)); d != "" {
				t.Errorf("Istiod's config store differs from what the bridge says it sent:\n%s", d)
			}
			if mode == "workloadEntry" && len(filterKinds(stored, []string{"WorkloadEntry"})) == 0 {
				t.Error("no WorkloadEntry reached Istiod in workloadEntry mode")
			}
			for _, line := range strings.Split(cp.Istiod.Log(), "\n") {
				for _, drop := range istiodDropLines {
					if strings.Contains(line, drop) {
						t.Errorf("Istiod dropped a resource: %s", line)
					}
				}
			}

			invalid := bridgeInvalid(t, b)
			var sources []string
			for _, inv := range invalid {
				sources = append(sources, inv.Source)
			}
			slices.Sort(sources)
			if !slices.Equal(sources, wantInvalid) {
				t.Errorf("the bridge reports invalid %v, want %v", sources, wantInvalid)
			}
			storedIDs := versions(stored)
			storedSources := map[string]string{}
			for _, o := range stored {
				storedSources[o.Metadata.Annotations["mcp-bridge.io/source"]] = o.ID()
			}
			for _, inv := range invalid {
				if id, ok := storedSources[inv.Source]; ok {
					t.Errorf("%s, reported invalid (%s: %s), is in Istiod as %s", inv.Source, inv.Reason, inv.Detail, id)
				}
				kind := inv.Collection[strings.LastIndex(inv.Collection, "/")+1:]
				if _, ok := storedIDs[kind+" "+inv.Namespace+"/"+inv.Name]; ok && inv.Name != "" {
					t.Errorf("%s %s/%s, reported invalid, is in Istiod", kind, inv.Namespace, inv.Name)
				}
			}
			t.Logf("%d resources sent and stored by Istiod unchanged; %d reported invalid by the bridge and absent from Istiod", len(sent), len(invalid))
		})
	}
}

// TestBridgeStaticResourcesValidated extends test 3 to the staticResources files: a resource
// Istiod would drop must not be sent from there either. The bridge may refuse the file at start
// (validate fails naming the resource) or serve the rest and report the resource invalid; what
// it must not do is send it, because Istiod drops it silently and ACKs.
//
// It fails today: bridge.LoadStatic checks only metadata (translate.NewResource), not specs, so
// both resources below are served, Istiod logs "Error adding a new resource" for each, and
// `mcp-bridge render` exits 0 although it promises to exit 1 when anything would be dropped.
func TestBridgeStaticResourcesValidated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", "services:\n  - name: static-ok\n    instances:\n      - {address: 127.0.21.1, ports: {http: 8080}}\n")
	rules := writeFile(t, dir, "rules.yaml", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: good, namespace: static-check}
spec:
  host: static-ok.file
  subsets: [{name: v1, labels: {version: v1}}]
---
# Invalid: "_" and "!" are not allowed in a host (Istio: agent.ValidateWildcardDomain).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad-host, namespace: static-check}
spec:
  hosts: ["bad_host!"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.21.2}]
---
# Invalid: a DestinationRule needs a host (Istio: ValidateDestinationRule).
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: no-host, namespace: static-check}
spec:
  subsets: [{name: v1, labels: {version: v1}}]
`)
	cfg := writeFile(t, dir, "mcp-bridge.yaml", fileRegistryConfig("static-check", services, fmt.Sprintf("staticResources: [%q]\n", rules)))
	bin := suite.Build(t, bridgePackage)

	if out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput(); err != nil {
		// Refused at start: acceptable if it names both resources.
		for _, name := range []string{"bad-host", "no-host"} {
			if !strings.Contains(string(out), name) {
				t.Errorf("mcp-bridge validate refuses the config without naming %s:\n%s", name, out)
			}
		}
		return
	}
	if err := exec.Command(bin, "render", "--config", cfg).Run(); err == nil {
		t.Error("mcp-bridge render exits 0 although two static resources would be dropped by Istiod")
	}

	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, ConfigFile: cfg})
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	servers.WaitFor(t, 10*time.Second, "the valid DestinationRule in Istiod", func() error {
		if _, ok := versions(configz(t, cp.Istiod, "DestinationRule"))["DestinationRule static-check/good"]; !ok {
			return fmt.Errorf("not there yet")
		}
		return nil
	})
	for _, line := range strings.Split(cp.Istiod.Log(), "\n") {
		for _, drop := range istiodDropLines {
			if strings.Contains(line, drop) {
				t.Errorf("Istiod dropped a resource the bridge sent: %.400s", line)
			}
		}
	}
	if d := diffVersions(versions(bridgeResources(t, b)), versions(inNamespace(configz(t, cp.Istiod), "static-check"))); d != "" {
		t.Errorf("Istiod's config store differs from what the bridge says it sent:\n%s", d)
	}
}
