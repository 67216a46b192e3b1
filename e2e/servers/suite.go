package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Cluster is an etcd plus a kube-apiserver with Istio's CRDs: what Istiod needs besides its
// config sources.
type Cluster struct {
	Etcd *Etcd
	API  *KubeAPIServer
}

// StartCluster starts a Cluster private to the test, stopped when it ends (~3 s to start). Tests that can
// share one use Suite.Cluster instead.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	e := StartEtcd(t)
	return &Cluster{Etcd: e, API: StartKubeAPIServer(t, e)}
}

// ControlPlane is a Cluster with an Istiod on it.
type ControlPlane struct {
	*Cluster
	Istiod *Istiod
}

// StartControlPlane starts a private Cluster and an Istiod on it; opts.API is filled in.
func StartControlPlane(t testing.TB, opts IstiodOptions) *ControlPlane {
	t.Helper()
	c := StartCluster(t)
	opts.API = c.API
	return &ControlPlane{Cluster: c, Istiod: StartIstiod(t, opts)}
}

// Suite holds what the tests of one test binary share: one Cluster, started when a test first
// asks for it, and the binaries built from this repository. Create it in TestMain and Close it
// after m.Run:
//
//	func TestMain(m *testing.M) {
//		suite = servers.NewSuite()
//		code := m.Run()
//		suite.Close()
//		os.Exit(code)
//	}
//
// Sharing is safe because each test runs its own Istiod and deletes the objects it applied;
// tests that run in parallel see each other's objects, so they use distinct hosts.
type Suite struct {
	dirOnce sync.Once
	dir     string
	dirErr  error

	mu      sync.Mutex // guards the cluster fields
	started bool
	cluster *Cluster
	err     error

	watched map[testing.TB]bool // tests that print the shared logs if they fail

	binMu    sync.Mutex // held while building, so each package is built once
	binaries map[string]string
}

// NewSuite returns an empty Suite; nothing starts until a test asks for it.
func NewSuite() *Suite { return &Suite{watched: map[testing.TB]bool{}, binaries: map[string]string{}} }

// Cluster returns the shared Cluster, starting it on first use. A failed start fails every test
// that asks, with the same error, instead of retrying for each.
func (s *Suite) Cluster(t testing.TB) *Cluster {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		start := time.Now()
		s.cluster, s.err = s.startCluster()
		if s.err == nil {
			t.Logf("servers: shared cluster ready in %v (API %s, logs %s)", time.Since(start).Round(time.Millisecond), s.cluster.API.URL, s.logDir())
		}
	}
	if s.err != nil {
		t.Fatalf("servers: shared cluster: %v", s.err)
	}
	c := s.cluster
	if !s.watched[t] {
		s.watched[t] = true
		t.Cleanup(func() {
			s.mu.Lock()
			delete(s.watched, t)
			s.mu.Unlock()
			if t.Failed() {
				c.Etcd.dumpLog(t)
				c.API.dumpLog(t)
			}
		})
	}
	return c
}

// ControlPlane starts an Istiod private to the test on the shared Cluster.
func (s *Suite) ControlPlane(t testing.TB, opts IstiodOptions) *ControlPlane {
	t.Helper()
	c := s.Cluster(t)
	opts.API = c.API
	return &ControlPlane{Cluster: c, Istiod: StartIstiod(t, opts)}
}

// startCluster returns errors rather than failing t: the Cluster outlives t, and a t.Fatalf
// half-way would leave the Suite neither started nor failed.
func (s *Suite) startCluster() (*Cluster, error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	var dirs [3]string
	var ports [3]int
	for i, name := range []string{"etcd", "kubernetes", "istio"} {
		dir, err := tool(name)
		if err != nil {
			return nil, err
		}
		dirs[i] = dir
	}
	for i := range ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = port
	}
	e, err := startEtcd(dirs[0], s.dir, s.logDir(), ports[0], ports[1])
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	apiDir := filepath.Join(s.dir, "kube-apiserver")
	if err := os.MkdirAll(apiDir, 0o755); err != nil {
		e.Stop(0)
		return nil, fmt.Errorf("creating %s: %w", apiDir, err)
	}
	k, err := startKubeAPIServer(ctx, dirs[1], dirs[2], apiDir, s.logDir(), e.ClientURL, ports[2])
	if err != nil {
		e.Stop(0)
		return nil, err
	}
	return &Cluster{Etcd: e, API: k}, nil
}

// Build compiles a main package of this repository (e.g. "./cmd/mcp-bridge") once per Suite and
// returns the binary's path.
func (s *Suite) Build(t testing.TB, pkg string) string {
	t.Helper()
	s.binMu.Lock()
	defer s.binMu.Unlock()
	if bin, ok := s.binaries[pkg]; ok {
		return bin
	}
	if err := s.ensureDir(); err != nil {
		t.Fatalf("servers: %v", err)
	}
	bin := filepath.Join(s.dir, "bin", filepath.Base(pkg))
	if err := buildBinary(t, pkg, bin); err != nil {
		t.Fatalf("servers: %v", err)
	}
	s.binaries[pkg] = bin
	return bin
}

// BuildBinary compiles a main package of this repository into the test's temporary directory,
// for tests without a Suite.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if err := buildBinary(t, pkg, bin); err != nil {
		t.Fatalf("servers: %v", err)
	}
	return bin
}

func buildBinary(t testing.TB, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	t.Logf("servers: built %s in %v", pkg, time.Since(start).Round(time.Millisecond))
	return nil
}

// Close stops the shared Cluster and removes the Suite's files (logs stay when
// MCP_BRIDGE_E2E_LOGS is set).
func (s *Suite) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster != nil {
		s.cluster.API.Stop(0) // as in StartKubeAPIServer: nothing to stop gracefully for
		s.cluster.Etcd.Stop(5 * time.Second)
		s.cluster = nil
	}
	s.binMu.Lock()
	defer s.binMu.Unlock()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *Suite) ensureDir() error {
	s.dirOnce.Do(func() {
		s.dir, s.dirErr = os.MkdirTemp("", "mcp-bridge-e2e-")
		if s.dirErr != nil {
			s.dirErr = fmt.Errorf("creating suite directory: %w", s.dirErr)
		}
	})
	return s.dirErr
}

func (s *Suite) logDir() string {
	if dir := os.Getenv("MCP_BRIDGE_E2E_LOGS"); dir != "" {
		return filepath.Join(dir, "suite")
	}
	return filepath.Join(s.dir, "logs")
}
