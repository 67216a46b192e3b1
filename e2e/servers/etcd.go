package servers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Etcd is an etcd server on loopback, the storage of a KubeAPIServer.
type Etcd struct {
	*Process
	// ClientURL is the http://127.0.0.1:port URL clients use.
	ClientURL string
}

// StartEtcd starts etcd (built by e2e/tools/build.sh) with its data in the test's temporary
// directory, and stops it when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	e, err := startEtcd(Tool(t, "etcd"), t.TempDir(), testLogDir(t), FreePort(t), FreePort(t))
	if err != nil {
		t.Fatalf("servers: %v", err)
	}
	stopOnCleanup(t, e.Process, 5*time.Second)
	return e
}

func startEtcd(toolDir, dataDir, logDir string, clientPort, peerPort int) (*Etcd, error) {
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command(filepath.Join(toolDir, "etcd"),
		"--name=e2e",
		"--data-dir="+filepath.Join(dataDir, "etcd"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer,
		// Test data is thrown away: skipping fsync makes every API server write cheaper.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	p, err := launch("etcd", cmd, logDir)
	if err != nil {
		return nil, err
	}
	e := &Etcd{Process: p, ClientURL: client}
	if err := p.WaitReady(30*time.Second, e.healthy); err != nil {
		p.Stop(0)
		return nil, err
	}
	return e, nil
}

func (e *Etcd) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.ClientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd /health: %s %s", resp.Status, body)
	}
	return nil
}
