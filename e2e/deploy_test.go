package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// TestDeployArtifacts checks what operators apply: the plain manifests, the sidecar example and
// the Helm chart (rendered by a real helm with several value sets) are accepted by a real
// kube-apiserver (server-side dry run: schema, defaults, validation), the NetworkPolicy the
// server returns lets only Istiod reach the MCP port and nothing the admin port, and the bridge
// configuration each one carries passes `mcp-bridge validate` (with the credentials of the
// manifest's Secret where the pod would mount them).
func TestDeployArtifacts(t *testing.T) {
	t.Parallel()
	root := servers.RepoRoot(t)
	api := suite.Cluster(t).API
	bin := suite.Build(t, "./cmd/mcp-bridge")
	helm := filepath.Join(servers.Tool(t, "helm"), "helm")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := api.CreateNamespace(ctx, "nacos"); err != nil {
		t.Fatal(err)
	}

	chart := filepath.Join(root, "deploy", "helm", "mcp-bridge")
	renderChart := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, helm, append([]string{"template", "rel", chart, "--namespace", "istio-system"}, args...)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	readFile := func(t *testing.T, rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	cases := []struct {
		name     string
		manifest func(t *testing.T) string
		// validateConfig: the carried config can be validated here (TLS files it names exist only
		// in a pod, so TLS variants are checked for rendering only).
		validateConfig bool
		want           []string
		// policy is the NetworkPolicy the manifest must carry; nil: none.
		policy *wantPolicy
	}{
		{"kubernetes manifest", func(t *testing.T) string { return readFile(t, "deploy/kubernetes/mcp-bridge.yaml") }, true,
			[]string{"kind: Deployment", "grpc:", "metricsPort: 15014"}, &wantPolicy{mcpPort: 18848}},
		{"nacos sidecar example", func(t *testing.T) string { return readFile(t, "deploy/examples/nacos-sidecar.yaml") }, true,
			[]string{"kind: StatefulSet"}, nil},
		{"helm chart defaults", func(t *testing.T) string { return renderChart(t) }, true,
			[]string{"checksum/config:", "address: :18848", "metricsPort: 15014"}, &wantPolicy{mcpPort: 18848}},
		// The chart owns mcp.address; the rest of config.mcp (here the pacing's metrics URL) is the
		// operator's and must reach the configuration.
		{"helm chart with Istiod's metrics at a fixed URL", func(t *testing.T) string {
			return renderChart(t, "--set", "config.mcp.pacing.metricsURL=http://istiod.istio-system:15014/metrics", "--set", "config.mcp.address=:1")
		}, true, []string{"address: :18848", "metricsURL: http://istiod.istio-system:15014/metrics", "mode: digest"}, &wantPolicy{mcpPort: 18848}},
		{"helm chart with TLS and exposed admin and credentials", func(t *testing.T) string {
			return renderChart(t, "--set", "tlsSecret=mcp-tls", "--set", "admin.expose=true", "--set", "credentialsSecret=creds", "--set", "replicaCount=3",
				"--set", "grafana.dashboards.enabled=true")
		}, false, []string{"certFile: /etc/mcp-bridge/tls/tls.crt", "address: :18849", "secretName: creds", "replicas: 3", "name: http-admin",
			"grafana_dashboard: \"1\"", "mcp_bridge_registry_healthy"},
			&wantPolicy{mcpPort: 18848}},
		{"helm chart with the admin port open to Prometheus and Istiod elsewhere", func(t *testing.T) string {
			return renderChart(t, "--set", "admin.expose=true", "--set", "mcpPort=15010", "--set", "networkPolicy.istiod.namespace=istio-cp",
				"--set-json", `networkPolicy.adminFrom=[{"podSelector":{"matchLabels":{"app":"prometheus"}}}]`)
		}, true, []string{"address: :15010"},
			&wantPolicy{mcpPort: 15010, istiodNamespace: "istio-cp", adminPort: 18849, adminFrom: map[string]string{"app": "prometheus"}}},
		// mcp.shards: one listener, container port, Service port and NetworkPolicy port per shard,
		// and Istiod's configSources list rendered from the value.
		{"helm chart with 3 MCP shards", func(t *testing.T) string {
			return renderChart(t, "--set", "mcp.shards=3", "--set", "admin.port=18899")
		}, true, []string{"shards: 3", "address: 127.0.0.1:18899", "name: grpc-mcp-2", "targetPort: mcp-2", "{name: mcp-2, containerPort: 18850}",
			"- address: xds://rel-mcp-bridge.istio-system.svc:18848\n      - address: xds://rel-mcp-bridge.istio-system.svc:18849\n      - address: xds://rel-mcp-bridge.istio-system.svc:18850\n      - address: k8s://"},
			&wantPolicy{mcpPort: 18848, shards: 3}},
		{"helm chart without the NetworkPolicy", func(t *testing.T) string { return renderChart(t, "--set", "networkPolicy.enabled=false") }, true,
			nil, nil},
	}
	t.Run("helm chart refuses shards over the admin port", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, helm, "template", "rel", chart, "--set", "mcp.shards=3")
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "admin.port 18849 is one of the MCP shard ports 18848..18850") {
			t.Errorf("helm template with mcp.shards=3 over admin.port 18849: err %v, want the admin.port message:\n%s", err, out)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			manifest := c.manifest(t)
			for _, w := range c.want {
				if !strings.Contains(manifest, w) {
					t.Errorf("manifest lacks %q", w)
				}
			}
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := api.Kubectl(ctx, "apply", "--dry-run=server", "-o", "json", "-f", path)
			if err != nil {
				t.Fatalf("kube-apiserver rejected it: %v\n%s", err, out)
			}
			// What the server returns, defaults applied, is what is asserted on.
			applied := appliedObjects(t, out)
			workload := applied.workload(t)
			checkNetworkPolicy(t, applied.networkPolicies, workload, c.policy)
			if !c.validateConfig {
				return
			}
			cfg := withMountedSecrets(t, manifest, configFromManifest(t, manifest))
			cfgPath := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.CommandContext(ctx, bin, "validate", "--config", cfgPath).CombinedOutput(); err != nil {
				t.Fatalf("mcp-bridge validate rejected the configuration it carries: %v\n%s\n%s", err, out, cfg)
			}
		})
	}
}

// configFromManifest returns the config.yaml of the (only) ConfigMap in a multi-document manifest.
func configFromManifest(t *testing.T, manifest string) string {
	t.Helper()
	for _, doc := range strings.Split(manifest, "\n---") {
		var obj struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("manifest document does not parse: %v\n%s", err, doc)
		}
		if obj.Kind == "ConfigMap" && obj.Data["config.yaml"] != "" {
			return obj.Data["config.yaml"]
		}
	}
	t.Fatal("no ConfigMap with config.yaml in the manifest")
	return ""
}

// k8sObject is the part of a Kubernetes object these checks read.
type k8sObject struct {
	Kind string `json:"kind"`
	Spec struct {
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		} `json:"template"`
	} `json:"spec"`
}

type labelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels"`
	MatchExpressions []json.RawMessage `json:"matchExpressions"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector labelSelector `json:"podSelector"`
		PolicyTypes []string      `json:"policyTypes"`
		Ingress     []struct {
			From []struct {
				NamespaceSelector *labelSelector  `json:"namespaceSelector"`
				PodSelector       *labelSelector  `json:"podSelector"`
				IPBlock           json.RawMessage `json:"ipBlock"`
			} `json:"from"`
			Ports []struct {
				Protocol string `json:"protocol"`
				Port     any    `json:"port"`
			} `json:"ports"`
		} `json:"ingress"`
	} `json:"spec"`
}

type applied struct {
	objects         []k8sObject
	networkPolicies []networkPolicy
}

// appliedObjects parses the output of kubectl apply -o json: one object, or a List of them.
func appliedObjects(t *testing.T, out string) applied {
	t.Helper()
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl output is not JSON: %v\n%s", err, out)
	}
	items := list.Items
	if list.Kind != "List" {
		items = []json.RawMessage{json.RawMessage(out)}
	}
	var a applied
	for _, raw := range items {
		var o k8sObject
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		a.objects = append(a.objects, o)
		if o.Kind == "NetworkPolicy" {
			var np networkPolicy
			if err := json.Unmarshal(raw, &np); err != nil {
				t.Fatal(err)
			}
			a.networkPolicies = append(a.networkPolicies, np)
		}
	}
	return a
}

// workload returns the Deployment or StatefulSet.
func (a applied) workload(t *testing.T) k8sObject {
	t.Helper()
	for _, o := range a.objects {
		if o.Kind == "Deployment" || o.Kind == "StatefulSet" {
			return o
		}
	}
	t.Fatalf("dry run applied no workload: %+v", a.objects)
	return k8sObject{}
}

// wantPolicy is the NetworkPolicy a manifest must carry.
type wantPolicy struct {
	mcpPort         int
	shards          int               // MCP ports from mcpPort on (mcp.shards); 0 means 1
	istiodNamespace string            // default istio-system
	adminPort       int               // 0: no rule may open the admin port
	adminFrom       map[string]string // the podSelector labels of the one peer allowed to it
}

// checkNetworkPolicy asserts that the manifest's NetworkPolicy selects the bridge's pods, lets
// only Istiod's pods reach the MCP port, and opens the admin port to nobody (or only adminFrom).
func checkNetworkPolicy(t *testing.T, nps []networkPolicy, workload k8sObject, want *wantPolicy) {
	t.Helper()
	if want == nil {
		if len(nps) != 0 {
			t.Errorf("%d NetworkPolicies, want none", len(nps))
		}
		return
	}
	if len(nps) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(nps))
	}
	spec := nps[0].Spec
	sel := spec.PodSelector
	if len(sel.MatchLabels) == 0 || len(sel.MatchExpressions) != 0 {
		t.Errorf("podSelector %+v: want matchLabels only", sel)
	}
	for k, v := range sel.MatchLabels {
		if workload.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("podSelector %s=%s does not select the %s's pods (labels %v)", k, v, workload.Kind, workload.Spec.Template.Metadata.Labels)
		}
	}
	if strings.Join(spec.PolicyTypes, ",") != "Ingress" {
		t.Errorf("policyTypes %v, want [Ingress]", spec.PolicyTypes)
	}
	ns := want.istiodNamespace
	if ns == "" {
		ns = "istio-system"
	}
	wantRules := 1
	if want.adminPort != 0 {
		wantRules = 2
	}
	if len(spec.Ingress) != wantRules {
		t.Fatalf("%d ingress rules, want %d: %+v", len(spec.Ingress), wantRules, spec.Ingress)
	}
	for i, rule := range spec.Ingress {
		// A rule without peers or without ports would let everyone in, or to every port.
		ports := 1
		if i == 0 {
			ports = max(want.shards, 1)
		}
		if len(rule.From) != 1 || len(rule.Ports) != ports {
			t.Fatalf("ingress[%d] has %d peers and %d ports, want 1 and %d: %+v", i, len(rule.From), len(rule.Ports), ports, rule)
		}
		peer, port := rule.From[0], rule.Ports[0]
		if port.Protocol != "TCP" || peer.IPBlock != nil {
			t.Errorf("ingress[%d]: protocol %q, ipBlock %s", i, port.Protocol, peer.IPBlock)
		}
		gotPort, _ := port.Port.(float64)
		switch i {
		case 0:
			for j, p := range rule.Ports {
				if got, _ := p.Port.(float64); int(got) != want.mcpPort+j || p.Protocol != "TCP" {
					t.Errorf("ingress[0] port %d: %v/%s, want the MCP port of shard %d, %d/TCP", j, p.Port, p.Protocol, j, want.mcpPort+j)
				}
			}
			if peer.NamespaceSelector == nil || !equalLabels(peer.NamespaceSelector.MatchLabels, map[string]string{"kubernetes.io/metadata.name": ns}) {
				t.Errorf("ingress[0] namespaceSelector %+v, want kubernetes.io/metadata.name=%s", peer.NamespaceSelector, ns)
			}
			if peer.PodSelector == nil || !equalLabels(peer.PodSelector.MatchLabels, map[string]string{"app": "istiod"}) {
				t.Errorf("ingress[0] podSelector %+v, want app=istiod", peer.PodSelector)
			}
		case 1:
			if int(gotPort) != want.adminPort {
				t.Errorf("ingress[1] port %v, want the admin port %d", port.Port, want.adminPort)
			}
			if peer.PodSelector == nil || !equalLabels(peer.PodSelector.MatchLabels, want.adminFrom) || peer.NamespaceSelector != nil {
				t.Errorf("ingress[1] peer %+v, want podSelector %v only", peer, want.adminFrom)
			}
		}
	}
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// withMountedSecrets writes the stringData of the manifest's Secrets to files, as the pod would
// mount them under /etc/mcp-bridge/credentials, and points the configuration at those files, so
// that validate can read every credential it names.
func withMountedSecrets(t *testing.T, manifest, cfg string) string {
	t.Helper()
	const mount = "/etc/mcp-bridge/credentials/"
	dir := t.TempDir()
	for _, doc := range strings.Split(manifest, "\n---") {
		var obj struct {
			Kind       string            `json:"kind"`
			StringData map[string]string `json:"stringData"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind != "Secret" {
			continue
		}
		for k, v := range obj.StringData {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return strings.ReplaceAll(cfg, mount, dir+"/")
}
