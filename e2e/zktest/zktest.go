// Package zktest holds helpers for tests that drive a real ZooKeeper as Dubbo processes do: a
// client session of a test's own (as a Dubbo process has), znodes created with their missing
// parents as persistent nodes (as Dubbo and Curator create them), and provider znodes named the
// way Dubbo names them. It is for tests only: the zookeeper adapter's own tests, its pipeline
// tests and the end-to-end tests.
package zktest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// defaultSessionTimeout is Session's: 10 s, the most a server with tickTime 500 ms
// (servers.StartZooKeeper's) grants.
const defaultSessionTimeout = 10 * time.Second

// quietLogger discards go-zookeeper's log lines, which would otherwise flood the test output on
// every reconnect.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// Session is a client with its own session (10 s), as a Dubbo process has, closed when the test
// ends. It returns once the session is established.
func Session(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	return Connect(t, addr, defaultSessionTimeout)
}

// Connect is Session with another session timeout and further go-zookeeper connection options
// (zk.WithDialer, ...), applied after the quiet logger.
func Connect(t testing.TB, addr string, sessionTimeout time.Duration, opts ...func(*zk.Conn)) *zk.Conn {
	t.Helper()
	// go-zookeeper's option type is unexported: one option of the same underlying type applies
	// the caller's.
	apply := func(c *zk.Conn) {
		for _, o := range opts {
			o(c)
		}
	}
	c, _, err := zk.Connect([]string{addr}, sessionTimeout, zk.WithLogger(quietLogger{}), zk.WithLogInfo(false), apply)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := servers.Poll(20*time.Second, func() error {
		if s := c.State(); s != zk.StateHasSession {
			return fmt.Errorf("state %v", s)
		}
		return nil
	}); err != nil {
		t.Fatalf("ZooKeeper session with %s: %v", addr, err)
	}
	return c
}

// MkdirAll creates p and its missing parents as persistent nodes with acl (nil: open to all), as
// Curator's creatingParentsIfNeeded does. Nodes that exist already are left as they are.
func MkdirAll(t testing.TB, c *zk.Conn, p string, acl []zk.ACL) {
	t.Helper()
	if acl == nil {
		acl = zk.WorldACL(zk.PermAll)
	}
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		if _, err := c.Create(cur, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("creating %s: %v", truncate(cur), err)
		}
	}
}

// Create creates p with data, its missing parents as persistent nodes (as Dubbo and Curator do);
// ephemeral for what a process registers about itself, as Dubbo's providers. The nodes are open
// to all. That p exists already is an error.
func Create(t testing.TB, c *zk.Conn, p string, data []byte, ephemeral bool) {
	t.Helper()
	if dir := p[:strings.LastIndexByte(p, '/')]; dir != "" {
		MkdirAll(t, c, dir, nil)
	}
	if _, err := c.Create(p, data, flags(ephemeral), zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating %s: %v", truncate(p), err)
	}
}

// Delete deletes p, whatever its version.
func Delete(t testing.TB, c *zk.Conn, p string) {
	t.Helper()
	if err := c.Delete(p, -1); err != nil {
		t.Fatalf("deleting %s: %v", truncate(p), err)
	}
}

// Node is one znode for CreateMany.
type Node struct {
	Path      string
	Data      []byte
	Ephemeral bool
}

// CreateMany creates many nodes fast: their parents first (persistent), then the nodes with 64
// concurrent (pipelined) requests, as a fleet of applications registering at once would. Nodes
// that exist already are left as they are. The nodes are open to all.
func CreateMany(t testing.TB, c *zk.Conn, nodes []Node) {
	t.Helper()
	dirs := map[string]bool{}
	for _, n := range nodes {
		if d := n.Path[:strings.LastIndexByte(n.Path, '/')]; d != "" {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	made := map[string]bool{}
	for _, d := range sorted {
		cur := ""
		for _, part := range strings.Split(strings.Trim(d, "/"), "/") {
			cur += "/" + part
			if made[cur] {
				continue
			}
			if _, err := c.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("creating %s: %v", truncate(cur), err)
			}
			made[cur] = true
		}
	}
	work := make(chan Node)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if _, err := c.Create(n.Path, n.Data, flags(n.Ephemeral), zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("creating %s: %w", truncate(n.Path), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range nodes {
		work <- n
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func flags(ephemeral bool) int32 {
	if ephemeral {
		return zk.FlagEphemeral
	}
	return 0
}

// JavaURLEncode is java.net.URLEncoder.encode(s, "UTF-8"), which Dubbo's URL.encode calls to
// name provider znodes: A-Z a-z 0-9 . - * _ stay, space becomes '+', every other byte of the
// UTF-8 encoding is %XX (upper-case hex). Unlike url.QueryEscape it keeps '*' and encodes '~'.
func JavaURLEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '*', c == '_':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// ProviderPath is where Dubbo registers a provider URL below a root (Dubbo's default root is
// "/dubbo"): <root>/<interface>/providers/<encoded URL>.
func ProviderPath(root, iface, rawURL string) string {
	return root + "/" + iface + "/providers/" + JavaURLEncode(rawURL)
}

// truncate cuts a node name for an error message: provider URLs can be hundreds of kilobytes
// long, and a test failing on one would otherwise print all of it.
func truncate(s string) string {
	const n = 300
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", strings.ToValidUTF8(s[:n], ""), len(s))
}
