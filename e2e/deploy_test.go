package e2e

import (
	"context"
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
// kube-apiserver (server-side dry run: schema, defaults, validation), and the bridge configuration
// each one carries passes `mcp-bridge validate`.
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
	}{
		{"kubernetes manifest", func(t *testing.T) string { return readFile(t, "deploy/kubernetes/mcp-bridge.yaml") }, true,
			[]string{"kind: Deployment", "grpc:"}},
		{"nacos sidecar example", func(t *testing.T) string { return readFile(t, "deploy/examples/nacos-sidecar.yaml") }, true,
			[]string{"kind: StatefulSet"}},
		{"helm chart defaults", func(t *testing.T) string { return renderChart(t) }, true,
			[]string{"checksum/config:", "address: :18848"}},
		{"helm chart with TLS and exposed admin and credentials", func(t *testing.T) string {
			return renderChart(t, "--set", "tlsSecret=mcp-tls", "--set", "admin.expose=true", "--set", "credentialsSecret=creds", "--set", "replicaCount=3",
				"--set", "grafana.dashboards.enabled=true")
		}, false, []string{"certFile: /etc/mcp-bridge/tls/tls.crt", "address: :18849", "secretName: creds", "replicas: 3", "name: http-admin",
			"grafana_dashboard: \"1\"", "mcp_bridge_registry_healthy"}},
	}
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
			out, err := api.Kubectl(ctx, "apply", "--dry-run=server", "-f", path)
			if err != nil {
				t.Fatalf("kube-apiserver rejected it: %v\n%s", err, out)
			}
			if !strings.Contains(out, "deployment.apps") && !strings.Contains(out, "statefulset.apps") {
				t.Errorf("dry run applied no workload:\n%s", out)
			}
			if !c.validateConfig {
				return
			}
			cfg := configFromManifest(t, manifest)
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
