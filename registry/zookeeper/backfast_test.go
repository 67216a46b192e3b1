package zookeeper

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// TestZooKeeperBackFast: a ZooKeeper that returns after an outage long enough for the dial
// backoff to have grown is reconnected within a couple of seconds, not when the backoff runs out
// (measured before the fix: ~20 s after a 67 s outage, the backoff at its 30 s cap). The
// connector probes with a bare TCP connect every second while it backs off (conn.go,
// probeInterval).
//
// The outage is a gate in front of a real ZooKeeper that refuses connections, as a stopped server
// does, and accepts again at once: restarting the JVM would take longer than the backoff being
// measured.
func TestZooKeeperBackFast(t *testing.T) {
	t.Parallel()
	z := servers.StartZooKeeper(t)
	g := startGate(t, z.Addr())
	prov := providerConn(t, z.Addr(), 30*time.Second, nil)
	key := dubboKey("com.example.Live", "", "")
	zktest.Create(t, prov, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.9.0.1", 20880, "")), nil, true)
	r := startAdapter(t, Config{Servers: []string{g.addr}, SessionTimeout: 30 * time.Second, ResyncInterval: -1,
		ReconnectBackoff: 2 * time.Second, ReconnectBackoffMax: 30 * time.Second})
	r.waitSynced(t)
	r.sink.Wait(t, 10*time.Second, "the provider", wantInstances(r, key, "10.9.0.1:20880"))
	replaces := r.sink.Count("replace")

	g.down()
	// Three failed dials in a row: the next one is 4-8 s away (2 s << 2, jittered).
	const grown = 3
	r.sink.Wait(t, 30*time.Second, "the dial backoff to grow", func() error {
		if n, _ := r.a.Describe()["failedDials"].(int); n < grown {
			return fmt.Errorf("failedDials %d, want %d", n, grown)
		}
		return nil
	})
	g.up(t)
	up := time.Now()
	const bound = 4 * time.Second // typically 2 s: a probe each 1 s, go-zookeeper's own 1 s pause, the handshake
	r.sink.Wait(t, 30*time.Second, "the adapter back after the outage", func() error {
		if n, failed := r.sink.Count("replace"), r.sink.Failed(); n == replaces || failed {
			return fmt.Errorf("replaces %d (before the outage %d), failed %v", n, replaces, failed)
		}
		return nil
	})
	back := time.Since(up)
	t.Logf("measure: ZooKeeper reachable again -> adapter resynced %v (bound %v)", back.Round(time.Millisecond), bound)
	if back > bound {
		t.Errorf("the adapter came back %v after ZooKeeper did, want within %v: its dial backoff was not cut short", back.Round(time.Millisecond), bound)
	}
	if err := wantInstances(r, key, "10.9.0.1:20880")(); err != nil {
		t.Error(err)
	}
	if d := r.a.Describe(); d["connected"] != true || d["failedDials"] != 0 {
		t.Errorf("after recovery: connected %v, failedDials %v; want true, 0", d["connected"], d["failedDials"])
	}
}

// gate forwards a fixed loopback port to a server; down closes the port (connections refused,
// open ones cut), up listens on it again.
type gate struct {
	addr, target string
	mu           sync.Mutex
	l            net.Listener
	conns        []net.Conn
}

func startGate(t testing.TB, target string) *gate {
	t.Helper()
	g := &gate{addr: fmt.Sprintf("127.0.0.1:%d", servers.FreePort(t)), target: target}
	g.up(t)
	t.Cleanup(g.down)
	return g
}

func (g *gate) up(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatalf("reopening the gate: %v", err)
	}
	g.mu.Lock()
	g.l = l
	g.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", g.target, time.Second)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, s)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

func (g *gate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.l != nil {
		g.l.Close()
		g.l = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}
