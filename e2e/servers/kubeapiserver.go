package servers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// KubectlPath is the kubectl these machines ship (1.32; the API server is 1.37, which kubectl
// tolerates for what the tests use).
const KubectlPath = "/usr/bin/kubectl"

// IstioNamespace is the namespace Istiod runs in and keeps its CA secret and leases in.
const IstioNamespace = "istio-system"

// KubeAPIServer is a kube-apiserver on loopback with token authentication, every request
// authorised, the istio-system namespace and Istio's CRDs installed. It runs no controllers:
// namespaces never finish deleting, so tests delete the objects they created instead.
type KubeAPIServer struct {
	*Process
	// URL is https://127.0.0.1:port.
	URL string
	// Token is the bearer token of a user in system:masters. Never log it.
	Token string
	// Kubeconfig is the path of a kubeconfig using URL, the server's CA and Token.
	Kubeconfig string
	// CAFile is the PEM bundle the server's self-signed serving certificate chains to.
	CAFile string

	dir    string
	client *http.Client

	mu        sync.Mutex
	discovery map[string]map[string]apiResource // group/version -> kind -> resource
}

type apiResource struct {
	name       string
	namespaced bool
}

// StartKubeAPIServer starts a kube-apiserver (built by e2e/tools/build.sh) on etcd, creates
// istio-system and installs the Istio CRDs from the istio tool's crd-all.gen.yaml, waiting until
// they are Established and served. It stops the server when the test ends.
func StartKubeAPIServer(t testing.TB, etcd *Etcd) *KubeAPIServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := startKubeAPIServer(ctx, Tool(t, "kubernetes"), Tool(t, "istio"), t.TempDir(), testLogDir(t), etcd.ClientURL, FreePort(t))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	// SIGKILL: a graceful stop takes 1.1 s and guards nothing, the data is thrown away.
	stopOnCleanup(t, k.Process, 0)
	return k
}

func startKubeAPIServer(ctx context.Context, kubeDir, istioDir, dir, logDir, etcdURL string, port int) (*KubeAPIServer, error) {
	k := &KubeAPIServer{
		URL:        fmt.Sprintf("https://127.0.0.1:%d", port),
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		CAFile:     filepath.Join(dir, "certs", "apiserver.crt"),
		dir:        dir,
		discovery:  map[string]map[string]apiResource{},
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("kube-apiserver token: %w", err)
	}
	k.Token = hex.EncodeToString(token)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(k.Token+`,e2e-admin,e2e-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("kube-apiserver token file: %w", err)
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := writeECKey(saKey); err != nil {
		return nil, fmt.Errorf("kube-apiserver service-account key: %w", err)
	}
	cmd := exec.Command(filepath.Join(kubeDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--token-auth-file="+tokens,
		"--authorization-mode=AlwaysAllow",
		"--anonymous-auth=false",
		// Nothing reconciles the kubernetes Service endpoints or flow control here; both only
		// cost start-up time and CPU.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	)
	p, err := launch("kube-apiserver", cmd, logDir)
	if err != nil {
		return nil, err
	}
	k.Process = p
	fail := func(err error) (*KubeAPIServer, error) {
		p.Stop(0)
		return nil, err
	}
	if err := p.WaitReady(60*time.Second, func() error { return k.ready(ctx) }); err != nil {
		return fail(err)
	}
	if err := k.writeKubeconfig(); err != nil {
		return fail(err)
	}
	if err := k.CreateNamespace(ctx, IstioNamespace); err != nil {
		return fail(err)
	}
	// Server-side apply, as `kubectl apply --server-side` does (the CRDs are too large for the
	// last-applied annotation of a client-side apply), but over HTTP: 0.6 s instead of 1.5 s,
	// and polling for Established takes 0.2 s where `kubectl wait` took 1.8 s.
	crds := filepath.Join(istioDir, "crd-all.gen.yaml")
	manifest, err := os.ReadFile(crds)
	if err != nil {
		return fail(fmt.Errorf("reading Istio CRDs: %w", err))
	}
	if err := k.ApplyObjects(ctx, string(manifest)); err != nil {
		return fail(fmt.Errorf("installing Istio CRDs from %s: %w", crds, err))
	}
	if err := p.WaitReady(60*time.Second, func() error { return k.crdsEstablished(ctx) }); err != nil {
		return fail(fmt.Errorf("waiting for Istio CRDs: %w", err))
	}
	return k, nil
}

// ready reports whether /readyz answers 200. The HTTP client is built once the server has written
// its self-signed certificate, so every later request verifies it.
func (k *KubeAPIServer) ready(ctx context.Context) error {
	if k.client == nil {
		pemBytes, err := os.ReadFile(k.CAFile)
		if err != nil {
			return fmt.Errorf("serving certificate not written yet: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("no certificate in %s yet", k.CAFile)
		}
		k.client = &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	status, body, err := k.Do(ctx, http.MethodGet, "/readyz", "", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/readyz: %d %s", status, body)
	}
	return nil
}

func (k *KubeAPIServer) writeKubeconfig() error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: e2e-admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: e2e-admin}
current-context: e2e
`, k.URL, k.CAFile, k.Token)
	if err := os.WriteFile(k.Kubeconfig, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// Do sends one request to the API server with the token and returns the status and body.
// contentType is only used when body is non-nil.
func (k *KubeAPIServer) Do(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+k.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return resp.StatusCode, out, nil
}

// Kubectl runs kubectl against the server and returns its combined output. Its discovery cache
// lives beside the server's files, not in ~/.kube, since every server has a new port.
func (k *KubeAPIServer) Kubectl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--kubeconfig=" + k.Kubeconfig, "--cache-dir=" + filepath.Join(k.dir, "kubectl-cache")}, args...)
	out, err := exec.CommandContext(ctx, KubectlPath, full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// CreateNamespace creates a namespace; one that exists already is fine.
func (k *KubeAPIServer) CreateNamespace(ctx context.Context, name string) error {
	body := fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, name)
	status, out, err := k.Do(ctx, http.MethodPost, "/api/v1/namespaces", "application/json", body)
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	if status != http.StatusCreated && status != http.StatusConflict {
		return fmt.Errorf("creating namespace %s: %d %s", name, status, out)
	}
	return nil
}

// writeECKey writes a P-256 key for signing service-account tokens: faster to make than RSA,
// and the API server accepts it for both the signing and the verifying flag.
func writeECKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
