package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateReadsCredentials: validate reads every credential source the registries name, as
// the adapters will when they connect, and fails naming the field and its line, never the value.
func TestValidateReadsCredentials(t *testing.T) {
	const value = "s3cret-Value-never-printed"
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "password", value+"\n")
	emptyFile := writeFile(t, dir, "empty", "\n")
	missing := filepath.Join(dir, "absent")
	t.Setenv("MCPB_TEST_SET", value)
	t.Setenv("MCPB_TEST_EMPTY", "")

	nacos := func(extra string) string {
		return "registries:\n- name: n\n  type: nacos\n  nacos:\n    servers: [127.0.0.1:8848]\n" + extra
	}
	zk := func(digest string) string {
		return "registries:\n- name: z\n  type: zookeeper\n  zookeeper:\n    servers: [127.0.0.1:2181]\n    digest: " + digest + "\n"
	}
	tests := []struct {
		name   string
		config string
		// ok: validate succeeds; otherwise want are substrings of its error output.
		ok   bool
		want []string
	}{
		{name: "password file present", config: nacos("    username: u\n    password: {file: " + secretFile + "}\n"), ok: true},
		{name: "password file missing", config: nacos("    username: u\n    password: {file: " + missing + "}\n"),
			want: []string{"line 7", "registries[0].nacos.password", missing, "no such file"}},
		{name: "password file empty", config: nacos("    username: u\n    password: {file: " + emptyFile + "}\n"),
			want: []string{"line 7", "registries[0].nacos.password", "is empty"}},
		{name: "password env set", config: nacos("    username: u\n    password: {env: MCPB_TEST_SET}\n"), ok: true},
		{name: "password env unset", config: nacos("    username: u\n    password: {env: MCPB_TEST_UNSET}\n"),
			want: []string{"line 7", "registries[0].nacos.password", "MCPB_TEST_UNSET", "not set"}},
		{name: "access key pair, one unreadable", config: nacos("    accessKey: {env: MCPB_TEST_SET}\n    secretKey: {env: MCPB_TEST_EMPTY}\n"),
			want: []string{"line 7", "registries[0].nacos.secretKey", "MCPB_TEST_EMPTY"}},
		{name: "TLS CA file missing", config: nacos("    tls: {enabled: true, caFile: " + missing + "}\n"),
			want: []string{"line 6", "registries[0].nacos.tls.caFile", missing}},
		{name: "consul token env unset", config: "registries:\n- name: c\n  type: consul\n  consul:\n    address: 127.0.0.1:8500\n    token: {env: MCPB_TEST_UNSET}\n",
			want: []string{"line 6", "registries[0].consul.token", "MCPB_TEST_UNSET"}},
		{name: "consul TLS CA file missing", config: "registries:\n- name: c\n  type: consul\n  consul:\n    address: https://127.0.0.1:8501\n    tls: {enabled: true, caFile: " + missing + "}\n",
			want: []string{"line 6", "registries[0].consul.tls.caFile", missing}},
		{name: "eureka password file missing", config: "registries:\n- name: e\n  type: eureka\n  eureka:\n    servers: [http://127.0.0.1:8761/eureka]\n    username: u\n    password: {file: " + missing + "}\n",
			want: []string{"line 7", "registries[0].eureka.password", missing}},
		{name: "zookeeper digest env set", config: zk("{env: MCPB_TEST_SET}"), ok: true},
		{name: "zookeeper digest env unset", config: zk("{env: MCPB_TEST_UNSET}"),
			want: []string{"line 6", "registries[0].zookeeper.digest", "MCPB_TEST_UNSET"}},
		{name: "every unreadable source is listed", config: "registries:\n" +
			"- name: z\n  type: zookeeper\n  zookeeper:\n    servers: [127.0.0.1:2181]\n    digest: {file: " + missing + "}\n" +
			"- name: n\n  type: nacos\n  nacos:\n    servers: [127.0.0.1:8848]\n    username: u\n    password: {env: MCPB_TEST_UNSET}\n",
			want: []string{"line 6: registries[0].zookeeper.digest", "line 12: registries[1].nacos.password"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, dir, fmt.Sprintf("config-%d.yaml", i), tt.config)
			code, stdout, stderr := runCLI(t, "validate", "--config", cfg)
			if strings.Contains(stdout+stderr, value) {
				t.Fatalf("output shows the credential's value:\n%s%s", stdout, stderr)
			}
			if tt.ok {
				if code != 0 || !strings.Contains(stdout, "configuration is valid") {
					t.Fatalf("exit %d, want 0 and 'configuration is valid'\nstdout: %s\nstderr: %s", code, stdout, stderr)
				}
				return
			}
			if code != 1 || strings.Contains(stdout, "configuration is valid") {
				t.Fatalf("exit %d, want 1 and no 'configuration is valid'\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestValidateNotesDropLabelsAlias: the older translate.dropLabels still validates, and validate
// says it is an alias of translate.labels.drop; labels.drop alone gets no note.
func TestValidateNotesDropLabelsAlias(t *testing.T) {
	dir := t.TempDir()
	services := writeFile(t, dir, "services.yaml", "services: []\n")
	reg := "registries:\n- name: f\n  type: file\n  file:\n    path: " + services + "\n"
	for _, tc := range []struct {
		name, translate string
		note            bool
	}{
		{"alias", "translate:\n  dropLabels: [pid]\n", true},
		{"labels.drop", "translate:\n  labels: {mode: all, drop: [pid]}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, dir, tc.name+".yaml", reg+tc.translate)
			code, stdout, stderr := runCLI(t, "validate", "--config", cfg)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if got := strings.Contains(stdout, "note: translate.dropLabels is an alias of translate.labels.drop"); got != tc.note {
				t.Errorf("note shown: %v, want %v\nstdout: %s", got, tc.note, stdout)
			}
		})
	}
}
