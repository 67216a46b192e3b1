package servers

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeperJar is the Debian zookeeper package's server jar (apt-get install zookeeper); its
// manifest Class-Path names the dependency jars under /usr/share/java.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZooKeeper is a standalone ZooKeeper 3.8 server (the Debian package) on 127.0.0.1 with its data
// in the test's temporary directory. Restart keeps the port and the data, like a server that was
// down for a while: sessions and persistent znodes survive.
type ZooKeeper struct {
	t       testing.TB
	port    int
	dataDir string
	cfgPath string
	logDir  string

	mu   sync.Mutex
	proc *Process
}

// StartZooKeeper starts a ZooKeeper server and stops it (by PID) when the test ends. tickTime is
// 500 ms, so sessions may be as short as 1 s (2 ticks) and expire quickly in tests.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		t.Fatalf("servers: ZooKeeper is not installed (%v): apt-get install -y --no-install-recommends zookeeper", err)
	}
	dir := t.TempDir()
	z := &ZooKeeper{t: t, port: FreePort(t), dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "zoo.cfg"), logDir: testLogDir(t)}
	// The short form "ZooKeeperServerMain PORT DIR" binds every interface; the file pins
	// loopback. The admin server (Jetty, port 8080) is off: the port is often taken here.
	cfg := fmt.Sprintf("dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\ntickTime=500\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\n"+
		"maxClientCnxns=0\n", z.dataDir, z.port)
	if err := os.WriteFile(z.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("servers: %v", err)
	}
	if err := z.start(); err != nil {
		t.Fatalf("servers: %v", err)
	}
	t.Cleanup(func() {
		z.mu.Lock()
		p := z.proc
		z.mu.Unlock()
		if p != nil {
			p.Stop(5 * time.Second)
			if t.Failed() {
				p.dumpLog(t)
			}
		}
	})
	return z
}

func (z *ZooKeeper) start() error {
	cmd := exec.Command("java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.admin.enableServer=false", "-Djava.net.preferIPv4Stack=true",
		"-cp", ZooKeeperJar, "org.apache.zookeeper.server.ZooKeeperServerMain", z.cfgPath)
	p, err := launch("zookeeper", cmd, z.logDir)
	if err != nil {
		return err
	}
	if err := p.WaitReady(60*time.Second, z.serving); err != nil {
		p.Stop(0)
		return err
	}
	z.mu.Lock()
	z.proc = p
	z.mu.Unlock()
	return nil
}

// Addr returns the client address, 127.0.0.1:port.
func (z *ZooKeeper) Addr() string { return fmt.Sprintf("127.0.0.1:%d", z.port) }

// Port returns the client port.
func (z *ZooKeeper) Port() int { return z.port }

// Process returns the running server process (a new one after Restart).
func (z *ZooKeeper) Process() *Process {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.proc
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Clients see their connections drop.
func (z *ZooKeeper) Stop() {
	if p := z.Process(); p != nil {
		p.Stop(5 * time.Second)
	}
}

// Restart stops the server if it runs and starts it again on the same port with the same data.
func (z *ZooKeeper) Restart() {
	z.t.Helper()
	z.Stop()
	if err := z.start(); err != nil {
		z.t.Fatalf("servers: restarting ZooKeeper: %v", err)
	}
}

// ruok sends the "ruok" four-letter word; a serving ZooKeeper answers "imok".
func (z *ZooKeeper) ruok() error {
	c, err := net.DialTimeout("tcp", z.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return err
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "imok" {
		return fmt.Errorf("ruok answered %q, want imok", line)
	}
	return nil
}

// serving succeeds once a client can open a session. ZooKeeper answers ruok before it accepts
// sessions; a client connecting in between has its first handshake closed and go-zookeeper waits
// a second before retrying, so a bridge started then would report its registry failed.
func (z *ZooKeeper) serving() error {
	if err := z.ruok(); err != nil {
		return err
	}
	c, events, err := zk.Connect([]string{z.Addr()}, 2*time.Second, zk.WithLogInfo(false), zk.WithLogger(discardLogger{}))
	if err != nil {
		return err
	}
	defer c.Close()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				_, _, err := c.Exists("/")
				return err
			}
		case <-timeout:
			return errors.New("no ZooKeeper session within 2s")
		}
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
