package servers

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Polaris is a running PolarisMesh server: the real Nacos-protocol (v1 HTTP + v2 gRPC) and
// Eureka-protocol registry of these machines (docs/real-servers.md). It keeps its boltdb store in a
// temporary work directory, so Restart brings back the same data on the same ports.
type Polaris struct {
	// Dir is the work directory: config, boltdb store and Polaris' own logs.
	Dir string
	// NacosPort is the Nacos HTTP port; the Nacos gRPC port is NacosPort+1000, the SDK's default offset.
	NacosPort int
	// EurekaPort serves the Eureka REST API under /eureka.
	EurekaPort int
	// HTTPPort and GRPCPort are Polaris' own APIs (unused by the bridge, required by the server).
	HTTPPort int
	GRPCPort int

	t    testing.TB
	bin  string
	proc *Process
}

// StartPolaris starts a Polaris server on free loopback ports and waits until its Nacos gRPC,
// Nacos HTTP and Eureka listeners answer (about a second). It is killed when the test ends, and
// its console log printed if the test failed; its own logs stay under Dir/log.
//
// Known differences from real Nacos seen through nacos-sdk-go (docs/real-servers.md lists more):
// weights are truncated to integers; changes of services outside DEFAULT_GROUP are not pushed;
// a service's last instance may stay listed after it deregistered; the service list pages over
// a randomly ordered list; new registrations show about a second late.
func StartPolaris(t testing.TB) *Polaris {
	t.Helper()
	cache := Tool(t, "polaris")
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "conf", "i18n"), os.DirFS(filepath.Join(cache, "conf", "i18n"))); err != nil {
		t.Fatalf("servers: copying Polaris i18n files: %v", err)
	}
	p := &Polaris{Dir: dir, t: t, bin: filepath.Join(cache, "polaris-server")}
	p.NacosPort = freeNacosPort(t)
	p.EurekaPort = FreePort(t)
	p.HTTPPort = FreePort(t)
	p.GRPCPort = FreePort(t)
	cfg := fmt.Sprintf(polarisConfig, p.EurekaPort, p.HTTPPort, p.GRPCPort, p.NacosPort)
	if err := os.WriteFile(filepath.Join(dir, "conf", "polaris-server.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatalf("servers: writing Polaris config: %v", err)
	}
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.proc.dumpLog(t)
		}
	})
	return p
}

// freeNacosPort finds a port N with N+1000 free too: Nacos clients derive the gRPC port from it.
func freeNacosPort(t testing.TB) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		n := FreePort(t)
		if n+1000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n+1000))
		if err != nil {
			continue
		}
		l.Close()
		return n
	}
	t.Fatalf("servers: no free port pair N, N+1000 for Polaris' Nacos listeners")
	return 0
}

func (p *Polaris) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, "start", "-c", filepath.Join("conf", "polaris-server.yaml"))
	cmd.Dir = p.Dir
	p.proc = startProcess(p.t, "polaris", cmd)
	WaitFor(p.t, 60*time.Second, "Polaris to open its Nacos and Eureka listeners", func() error {
		if exited, err := p.proc.Exited(); exited {
			p.proc.dumpLog(p.t)
			p.t.Fatalf("servers: polaris exited during start-up: %v (log above; its own logs are under %s/log)", err, p.Dir)
		}
		for _, port := range []int{p.NacosPort + 1000, p.EurekaPort} {
			if err := DialCheck(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))(); err != nil {
				return err
			}
		}
		// The Nacos HTTP API answers once the naming caches are loaded.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/nacos/v1/ns/operator/metrics", p.NacosPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("nacos metrics: HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// NacosAddr is the Nacos HTTP address "127.0.0.1:N"; clients reach gRPC at N+1000.
func (p *Polaris) NacosAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.NacosPort) }

// EurekaURL is the Eureka service URL, e.g. http://127.0.0.1:P/eureka.
func (p *Polaris) EurekaURL() string { return fmt.Sprintf("http://127.0.0.1:%d/eureka", p.EurekaPort) }

// Process returns the running server process, e.g. to Pause it.
func (p *Polaris) Process() *Process { return p.proc }

// Log returns what the server has written to its console so far.
func (p *Polaris) Log() string { return p.proc.Log() }

// Kill stops the server at once with SIGKILL (SIGTERM takes ~7 s). Its data stays for Restart.
func (p *Polaris) Kill() {
	if p.proc != nil {
		p.proc.Stop(0)
	}
}

// Restart kills the server if it runs and starts it again on the same ports with the same store.
func (p *Polaris) Restart() {
	p.t.Helper()
	p.Kill()
	p.start()
}

// polarisConfig is the smallest configuration Polaris v1.18 runs with (docs/real-servers.md): the
// batch and heartbeat blocks are required (nil pointer otherwise). Arguments: Eureka port,
// api-http port, service-grpc port, Nacos HTTP port.
const polarisConfig = `bootstrap:
  logger:
    default:
      rotateOutputPath: log/polaris-default.log
      errorRotateOutputPath: log/polaris-default-error.log
      outputLevel: warn
  startInOrder:
    open: false
  polaris_service:
    self_address: 127.0.0.1
    # The heartbeat checker assigns instances to the servers registered as polaris.checker:
    # without this registration no instance ever turns unhealthy.
    enable_register: true
    isolated: false
    services:
      - name: polaris.checker
        protocols:
          - service-grpc
apiservers:
  - name: service-eureka
    option:
      listenIP: 127.0.0.1
      listenPort: %d
      namespace: default
      refreshInterval: 1
      deltaExpireInterval: 60
      unhealthyExpireInterval: 180
  - name: api-http
    option:
      listenIP: 127.0.0.1
      listenPort: %d
      enablePprof: false
      enableSwagger: false
    api:
      admin:
        enable: true
      console:
        enable: true
        include: [default, service, config]
      client:
        enable: true
        include: [discover, register, healthcheck, config]
  - name: service-grpc
    option:
      listenIP: 127.0.0.1
      listenPort: %d
    api:
      client:
        enable: true
        include: [discover, register, healthcheck]
  - name: service-nacos
    option:
      listenIP: 127.0.0.1
      listenPort: %d
      defaultNamespace: default
auth:
  user:
    name: defaultUser
    option:
      salt: polarismesh@2021
  strategy:
    name: defaultStrategy
    option:
      consoleOpen: false
      clientOpen: false
namespace:
  autoCreate: true
naming:
  autoCreate: true
  batch:
    register:
      open: true
      queueSize: 10240
      waitTime: 32ms
      maxBatchCount: 128
      concurrency: 128
      dropExpireTask: true
      taskLife: 30s
    deregister:
      open: true
      queueSize: 10240
      waitTime: 32ms
      maxBatchCount: 128
      concurrency: 128
healthcheck:
  open: true
  service: polaris.checker
  slotNum: 30
  minCheckInterval: 1s
  maxCheckInterval: 30s
  clientReportInterval: 120s
  batch:
    heartbeat:
      open: true
      queueSize: 10240
      waitTime: 32ms
      maxBatchCount: 32
      concurrency: 64
  checkers:
    - name: heartbeatMemory
config:
  open: true
  contentMaxLength: 20000
cache:
  diffTime: 5s
store:
  name: boltdbStore
  option:
    path: ./polaris.bolt
plugin:
  history:
    entries:
      - name: HistoryLogger
  discoverEvent:
    entries:
      - name: discoverEventLocal
  statis:
    entries:
      - name: local
        option:
          interval: 60
  ratelimit:
    name: token-bucket
    option:
      enable: false
`
