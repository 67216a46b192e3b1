package pipeline_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// zkConn is a client session of the test's own, as a Dubbo application's.
func zkConn(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietLogger{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := servers.Poll(20*time.Second, func() error {
		if c.State() != zk.StateHasSession {
			return fmt.Errorf("state %v", c.State())
		}
		return nil
	}); err != nil {
		t.Fatalf("ZooKeeper session: %v", err)
	}
	return c
}

// javaURLEncode is java.net.URLEncoder.encode(s, "UTF-8"), with which Dubbo names provider znodes.
func javaURLEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
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

func providerPath(iface, rawURL string) string {
	return "/dubbo/" + iface + "/providers/" + javaURLEncode(rawURL)
}

func mkdirs(t testing.TB, c *zk.Conn, p string) {
	t.Helper()
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		if _, err := c.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("creating %s: %v", cur, err)
		}
	}
}

// create creates a node, its parents as persistent nodes; ephemeral as Dubbo's providers.
func create(t testing.TB, c *zk.Conn, p string, ephemeral bool) {
	t.Helper()
	mkdirs(t, c, p[:strings.LastIndexByte(p, '/')])
	var flags int32
	if ephemeral {
		flags = zk.FlagEphemeral
	}
	if _, err := c.Create(p, nil, flags, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating %s: %v", p, err)
	}
}

func remove(t testing.TB, c *zk.Conn, p string) {
	t.Helper()
	if err := c.Delete(p, -1); err != nil {
		t.Fatalf("deleting %s: %v", p, err)
	}
}

// createMany creates nodes (persistent, parents first) with 64 requests in flight.
func createMany(t testing.TB, c *zk.Conn, paths []string) {
	t.Helper()
	dirs := map[string]bool{}
	for _, p := range paths {
		d := p[:strings.LastIndexByte(p, '/')]
		if !dirs[d] {
			dirs[d] = true
			mkdirs(t, c, d)
		}
	}
	work := make(chan string)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("creating %s: %w", p, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func liveURL(ip string, port int) string {
	return fmt.Sprintf("dubbo://%s:%d/com.example.Live?application=live-provider&interface=com.example.Live&methods=hello&side=provider&timestamp=%d", ip, port, time.Now().UnixMilli())
}
