package servers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ConsulOptions configure a test Consul agent.
type ConsulOptions struct {
	// ACLToken, when set, enables ACLs with default policy deny and this initial management
	// token, which the test then uses to create narrower tokens.
	ACLToken string
	// HCL are extra -hcl arguments, e.g. `limits { http_max_conns_per_client = 4096 }` for a
	// client holding more than 200 blocking queries at once.
	HCL []string
	// Datacenter names the agent's datacenter (default dc1). JoinWAN is the WAN (serf_wan)
	// address of another test agent's server (Consul.WANAddr) to federate with, so that each
	// datacenter's catalog can be read through the other's agent.
	Datacenter string
	JoinWAN    string
}

// Consul is a HashiCorp Consul agent in dev mode (a single server that is its own leader) built
// by e2e/tools/build.sh consul, bound to 127.0.0.1 on free ports, with DNS and gRPC off. Restart
// starts it with a fresh data directory on the same ports: Consul's Raft indexes start again
// from the beginning, which is the index reset clients must handle.
type Consul struct {
	t      testing.TB
	bin    string
	opts   ConsulOptions
	logDir string
	// Port is the HTTP API port; the server and Serf ports are only for the agent itself.
	Port                         int
	serverPort, lanPort, wanPort int

	mu   sync.Mutex
	proc *Process
	runs int
}

// StartConsul starts a Consul agent and stops it (by PID) when the test ends.
func StartConsul(t testing.TB, opts ConsulOptions) *Consul {
	t.Helper()
	c := &Consul{t: t, bin: filepath.Join(Tool(t, "consul"), "consul"), opts: opts, logDir: testLogDir(t),
		Port: FreePort(t), serverPort: FreePort(t), lanPort: FreePort(t), wanPort: FreePort(t)}
	if err := c.start(); err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Cleanup(func() {
		if p := c.Process(); p != nil {
			p.Stop(5 * time.Second)
			if t.Failed() {
				p.dumpLog(t)
			}
		}
	})
	return c
}

func (c *Consul) start() error {
	c.mu.Lock()
	c.runs++
	// A new directory per run: a restarted agent has lost everything, as after a disk replacement.
	dataDir := filepath.Join(c.t.TempDir(), fmt.Sprintf("consul-data-%d", c.runs))
	c.mu.Unlock()
	args := []string{"agent", "-dev", "-node=t", "-bind=127.0.0.1", "-client=127.0.0.1", "-advertise=127.0.0.1",
		"-data-dir=" + dataDir,
		"-hcl", fmt.Sprintf("ports { http = %d, dns = -1, grpc = -1, grpc_tls = -1, server = %d, serf_lan = %d, serf_wan = %d }",
			c.Port, c.serverPort, c.lanPort, c.wanPort),
		"-hcl", "disable_update_check = true"}
	if c.opts.Datacenter != "" {
		args = append(args, "-datacenter="+c.opts.Datacenter)
	}
	if c.opts.JoinWAN != "" {
		args = append(args, "-retry-join-wan="+c.opts.JoinWAN)
	}
	if c.opts.ACLToken != "" {
		args = append(args, "-hcl", fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q } }`, c.opts.ACLToken))
	}
	for _, h := range c.opts.HCL {
		args = append(args, "-hcl", h)
	}
	p, err := launch("consul", exec.Command(c.bin, args...), c.logDir)
	if err != nil {
		return err
	}
	if err := p.WaitReady(60*time.Second, c.leader); err != nil {
		p.Stop(0)
		return err
	}
	c.mu.Lock()
	c.proc = p
	c.mu.Unlock()
	return nil
}

// leader succeeds once the agent has elected itself: before that, catalog writes fail.
func (c *Consul) leader() error {
	resp, err := http.Get(c.URL() + "/v1/status/leader")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var leader string
	if err := json.NewDecoder(resp.Body).Decode(&leader); err != nil {
		return fmt.Errorf("status/leader: %w", err)
	}
	if strings.TrimSpace(leader) == "" {
		return fmt.Errorf("no leader yet")
	}
	return nil
}

// Addr returns the HTTP API address, 127.0.0.1:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.Port) }

// WANAddr returns the agent's Serf WAN address, for ConsulOptions.JoinWAN of another agent.
func (c *Consul) WANAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.wanPort) }

// URL returns the HTTP API base URL.
func (c *Consul) URL() string { return "http://" + c.Addr() }

// Process returns the running agent (a new one after Restart).
func (c *Consul) Process() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Stop stops the agent by PID (SIGTERM, SIGKILL after 5 s).
func (c *Consul) Stop() {
	if p := c.Process(); p != nil {
		p.Stop(5 * time.Second)
	}
}

// Restart stops the agent if it runs and starts a new one on the same ports with an empty data
// directory: every registration is gone and the catalog's indexes start again from 1.
func (c *Consul) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.start(); err != nil {
		c.t.Fatalf("servers: restarting Consul: %v", err)
	}
}
