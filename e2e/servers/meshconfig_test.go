package servers

import (
	"strings"
	"testing"
)

func TestMeshConfigYAML(t *testing.T) {
	tests := []struct {
		name    string
		sources []ConfigSource
		extra   string
		want    string
		wantErr string
	}{
		{
			name: "default is the CRD store alone",
			want: "configSources:\n    - address: k8s://\n",
		},
		{
			name: "TLS mode defaults to SIMPLE, extra keys are kept",
			sources: []ConfigSource{
				{Address: "xds://127.0.0.1:1", TLSSettings: &SourceTLS{CACertificates: "/ca.pem", SNI: "bridge", SubjectAltNames: []string{"bridge"}}},
				{Address: K8sAddress},
			},
			extra: "rootNamespace: istio-config\ndefaultConfig: {holdApplicationUntilProxyStarts: true}\n",
			want: `configSources:
    - address: xds://127.0.0.1:1
      tlsSettings:
        mode: SIMPLE
        caCertificates: /ca.pem
        sni: bridge
        subjectAltNames:
            - bridge
    - address: k8s://
defaultConfig:
    holdApplicationUntilProxyStarts: true
rootNamespace: istio-config
`,
		},
		{
			name:    "configSources only through the option",
			extra:   "configSources: [{address: k8s://}]",
			wantErr: "set configSources through IstiodOptions.ConfigSources",
		},
		{
			name:    "invalid extra YAML",
			extra:   "rootNamespace: [",
			wantErr: "IstiodOptions.MeshConfig",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := meshConfigYAML(tt.sources, tt.extra)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     []string
		wantErr  string
	}{
		{
			name: "documents in order, empty ones skipped",
			manifest: `apiVersion: v1
kind: Namespace
metadata: {name: a}
---
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ns}
spec: {hosts: [b.example]}
`,
			want: []string{"Namespace/a", "ServiceEntry ns/b"},
		},
		{
			name:     "name required",
			manifest: "apiVersion: v1\nkind: Namespace\nmetadata: {}\n",
			wantErr:  "document 0: apiVersion, kind and metadata.name are required",
		},
		{
			name:     "invalid YAML names the document",
			manifest: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n",
			wantErr:  "manifest document 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := parseManifest(tt.manifest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
