package servers

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ConfigSource is one entry of Istiod's meshConfig.configSources.
type ConfigSource struct {
	// Address is "k8s://" (the CRD store) or "xds://host:port" (an MCP server such as the bridge).
	Address string `yaml:"address"`
	// TLSSettings, when set, makes Istiod dial an xds:// source over TLS (Istio >= 1.26).
	TLSSettings *SourceTLS `yaml:"tlsSettings,omitempty"`
}

// SourceTLS is a configSources entry's tlsSettings. Istiod honours mode SIMPLE only: MUTUAL
// silently falls back to plaintext, so this type offers no client certificate.
type SourceTLS struct {
	// Mode defaults to SIMPLE.
	Mode string `yaml:"mode"`
	// CACertificates is the PEM text (not a file path) of the CA bundle that verifies the server:
	// for configSources Istiod passes this field straight to x509.CertPool.AppendCertsFromPEM
	// (pilot/pkg/bootstrap/configcontroller.go getTransportCredentials), unlike the file paths
	// the same field holds in a DestinationRule.
	CACertificates  string   `yaml:"caCertificates,omitempty"`
	SNI             string   `yaml:"sni,omitempty"`
	SubjectAltNames []string `yaml:"subjectAltNames,omitempty"`
}

// K8sAddress is the configSources address of the Kubernetes CRD store. Any configSources list
// turns that store off unless it lists k8s:// too (istio#34134).
const K8sAddress = "k8s://"

// IstiodOptions configures StartIstiod.
type IstiodOptions struct {
	// API is the Kubernetes API server Istiod uses (required: Istiod >= 1.30 panics without one).
	API *KubeAPIServer
	// ConfigSources defaults to [k8s://]. Istiod exits at start-up if an xds:// source does not
	// answer, so start the bridge first.
	ConfigSources []ConfigSource
	// MeshConfig is extra mesh config YAML; its top-level keys are added to the generated
	// mesh config (configSources is set through ConfigSources only).
	MeshConfig string
	// Env adds to Istiod's environment, e.g. PILOT_DEBOUNCE_AFTER=10ms for tests that make many
	// changes (Istio's default debounce is 100 ms).
	Env map[string]string
	// GoMemLimit, when set, is Istiod's GOMEMLIMIT (e.g. "1GiB"): the Go runtime then collects
	// garbage before the heap reaches GOGC's 2x target, which trims RSS toward the live heap
	// (docs/scale.md, "Istiod memory under MCP pushes"). Opt-in, as in a real deployment.
	GoMemLimit string
	// MonitoringPort, when set, is the port of Istiod's /metrics (else a free one): a bridge that
	// paces on Istiod's metrics (mcp.pacing.metricsPort) starts before Istiod and must know it.
	MonitoringPort int
	// ReadyTimeout bounds the wait for /ready (default 60 s).
	ReadyTimeout time.Duration
}

// Istiod is a pilot-discovery process on loopback.
type Istiod struct {
	// Process is the current process; Restart replaces it.
	*Process
	// HTTPAddr serves /ready and the debug pages (/debug/configz, /debug/syncz, /debug/registryz).
	HTTPAddr string
	// GRPCAddr is the plaintext xDS port: sidecar views and proxyless clients connect here. It
	// opens only once every config source has synced.
	GRPCAddr string
	// MonitoringAddr serves /metrics.
	MonitoringAddr string
	// MeshConfigPath is the mesh config file Istiod reads.
	MeshConfigPath string

	args    []string
	env     []string
	dir     string
	logDir  string
	timeout time.Duration
	procs   []*Process
}

// StartIstiod writes the mesh config, starts Istiod (built by e2e/tools/build.sh) and waits until
// /ready answers 200 and its xDS port accepts connections. If Istiod exits meanwhile (e.g. an
// xds:// source is down) the test fails at once with Istiod's log. Istiod is stopped when the
// test ends.
func StartIstiod(t testing.TB, opts IstiodOptions) *Istiod {
	t.Helper()
	i, err := TryStartIstiod(t, opts)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	return i
}

// TryStartIstiod is StartIstiod for tests that expect Istiod not to become ready (it exits, or
// never syncs a config source): it returns that as an error, with the log's tail, instead of
// failing the test. Set ReadyTimeout to bound the wait. Istiod is stopped when the test ends
// either way.
func TryStartIstiod(t testing.TB, opts IstiodOptions) (*Istiod, error) {
	t.Helper()
	if opts.API == nil {
		t.Fatalf("servers: IstiodOptions.API is required")
	}
	dir := t.TempDir()
	mesh, err := meshConfigYAML(opts.ConfigSources, opts.MeshConfig)
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	i := &Istiod{
		HTTPAddr:       addr(FreePort(t)),
		GRPCAddr:       addr(FreePort(t)),
		MonitoringAddr: addr(cmp.Or(opts.MonitoringPort, FreePort(t))),
		MeshConfigPath: filepath.Join(dir, "mesh.yaml"),
		dir:            dir,
		logDir:         testLogDir(t),
		timeout:        opts.ReadyTimeout,
	}
	if i.timeout == 0 {
		i.timeout = 60 * time.Second
	}
	if err := os.WriteFile(i.MeshConfigPath, mesh, 0o644); err != nil {
		t.Fatalf("servers: writing mesh config: %v", err)
	}
	i.args = []string{"discovery",
		"--registries=Kubernetes",
		"--kubeconfig=" + opts.API.Kubeconfig,
		"--meshConfig=" + i.MeshConfigPath,
		// An absent file means "no mesh networks"; the default path would be read relative to the cwd.
		"--networksConfig=" + filepath.Join(dir, "absent-mesh-networks.yaml"),
		"--httpAddr=" + i.HTTPAddr,
		"--grpcAddr=" + i.GRPCAddr,
		"--secureGRPCAddr=" + addr(FreePort(t)),
		"--monitoringAddr=" + i.MonitoringAddr,
		"--httpsAddr=" + addr(FreePort(t)),
		"--ctrlz_address=127.0.0.1",
		"--ctrlz_port=" + strconv.Itoa(FreePort(t)),
		"--shutdownDuration=1s",
	}
	// A clean environment: the test process's GRPC_* or KUBECONFIG must not leak into Istiod.
	env := map[string]string{
		"PATH":          os.Getenv("PATH"),
		"HOME":          dir,
		"POD_NAME":      "istiod-" + sanitize(t.Name()),
		"POD_NAMESPACE": IstioNamespace,
	}
	if opts.GoMemLimit != "" {
		env["GOMEMLIMIT"] = opts.GoMemLimit
	}
	maps.Copy(env, opts.Env)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		i.env = append(i.env, k+"="+env[k])
	}
	binary := filepath.Join(Tool(t, "istio"), "pilot-discovery")
	err = i.start(binary)
	if i.Process != nil {
		t.Cleanup(func() {
			i.Process.Stop(5 * time.Second)
			if t.Failed() {
				for _, p := range i.procs {
					p.dumpLog(t)
				}
			}
		})
	}
	if err != nil {
		return nil, err
	}
	t.Logf("servers: istiod ready (pid %d) http %s grpc %s, log %s", i.PID(), i.HTTPAddr, i.GRPCAddr, i.LogPath)
	return i, nil
}

func (i *Istiod) start(binary string) error {
	cmd := exec.Command(binary, i.args...)
	cmd.Env = i.env
	cmd.Dir = i.dir // Istiod writes a few files relative to its working directory
	p, err := launch("istiod", cmd, i.logDir)
	if err != nil {
		return err
	}
	i.Process = p
	i.procs = append(i.procs, p)
	grpcOpen := DialCheck(i.GRPCAddr)
	return p.WaitReady(i.timeout, func() error {
		if err := i.ready(); err != nil {
			return err
		}
		return grpcOpen()
	})
}

// Restart stops Istiod (SIGTERM, as Kubernetes would) and starts it again with the same ports and
// mesh config, waiting for /ready. Not safe to call while another goroutine uses the Istiod.
func (i *Istiod) Restart(t testing.TB) {
	t.Helper()
	i.Process.Stop(5 * time.Second)
	if err := i.start(i.cmdPath()); err != nil {
		t.Fatalf("servers: restarting istiod: %v", err)
	}
}

func (i *Istiod) cmdPath() string { return i.Process.cmd.Path }

func (i *Istiod) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	status, body, err := httpGet(ctx, "http://"+i.HTTPAddr+"/ready")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/ready: %d %s", status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Debug fetches a page from Istiod's HTTP port, e.g. "/debug/configz" or "/debug/syncz".
func (i *Istiod) Debug(ctx context.Context, path string) ([]byte, error) {
	status, body, err := httpGet(ctx, "http://"+i.HTTPAddr+path)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("istiod %s: %d %s", path, status, body)
	}
	return body, nil
}

// Metrics fetches Istiod's Prometheus metrics text.
func (i *Istiod) Metrics(ctx context.Context) (string, error) {
	status, body, err := httpGet(ctx, "http://"+i.MonitoringAddr+"/metrics")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("istiod /metrics: %d", status)
	}
	return string(body), nil
}

// RSS returns the resident set size of the current Istiod process in bytes.
func (i *Istiod) RSS() (int64, error) { return RSS(i.PID()) }

// RSS returns a process's resident set size in bytes, from /proc/<pid>/status.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading RSS of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmRSS %q of pid %d: %w", rest, pid, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading RSS of pid %d: %w", pid, err)
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status (a zombie?)", pid)
}

// meshConfigYAML renders Istiod's mesh config: configSources (default [k8s://]) plus the
// top-level keys of extra.
func meshConfigYAML(sources []ConfigSource, extra string) ([]byte, error) {
	if len(sources) == 0 {
		sources = []ConfigSource{{Address: K8sAddress}}
	}
	mesh := map[string]any{}
	if err := yaml.Unmarshal([]byte(extra), &mesh); err != nil {
		return nil, fmt.Errorf("IstiodOptions.MeshConfig: %w", err)
	}
	if _, ok := mesh["configSources"]; ok {
		return nil, errors.New("IstiodOptions.MeshConfig: set configSources through IstiodOptions.ConfigSources")
	}
	srcs := make([]ConfigSource, len(sources))
	for n, s := range sources {
		if s.TLSSettings != nil && s.TLSSettings.Mode == "" {
			tls := *s.TLSSettings
			tls.Mode = "SIMPLE"
			s.TLSSettings = &tls
		}
		srcs[n] = s
	}
	mesh["configSources"] = srcs
	out, err := yaml.Marshal(mesh)
	if err != nil {
		return nil, fmt.Errorf("rendering mesh config: %w", err)
	}
	return out, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func httpGet(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
