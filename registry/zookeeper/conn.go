package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// conn wraps a zk.Conn: paths relative to the chroot, reads counted, dials backed off, and every
// node event and session change handed to the watcher through a non-blocking callback.
type conn struct {
	zk     *zk.Conn
	chroot string
	reads  *atomic.Int64
}

// connector dials ZooKeeper with exponential backoff between failed dials; go-zookeeper itself
// only pauses 1 s after trying every server once.
type connector struct {
	ctx        context.Context
	initial    time.Duration
	max        time.Duration
	log        *slog.Logger
	mu         sync.Mutex
	failures   int
	lastLogged time.Time
}

func (c *connector) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	n := c.failures
	c.mu.Unlock()
	if n > 0 {
		d := c.initial << min(n-1, 20)
		if d > c.max || d <= 0 {
			d = c.max
		}
		// Jitter, so bridges that lost ZooKeeper together do not come back in step.
		d = d/2 + rand.N(d/2+1)
		if nc, err := c.probeWhileWaiting(network, addr, d); nc != nil || err != nil {
			return nc, err
		}
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(c.ctx, network, addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failures++
		if time.Since(c.lastLogged) > 30*time.Second {
			c.lastLogged = time.Now()
			c.log.Warn("cannot reach ZooKeeper server; retrying with backoff", "server", addr, "failures", c.failures, "err", err)
		}
		return nil, err
	}
	c.failures = 0
	return nc, nil
}

// probeInterval is how often a backing-off connector tries a bare TCP connect: a server that is
// back is dialled within about this long instead of after a backoff grown to its cap (a ZooKeeper
// back after a minute's outage waited ~20 s for the next dial, close to the session timeout, so
// sessions risked expiring for nothing). A refused connect costs nothing on either side.
const probeInterval = time.Second

// probeWhileWaiting waits up to wait, trying to connect every probeInterval; a connect that
// succeeds is the connection (the probe and the dial are the same thing). It returns (nil, nil)
// when the wait ran out with no probe succeeding, and the context's error when it ends.
func (c *connector) probeWhileWaiting(network, addr string, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		step := min(probeInterval, time.Until(deadline))
		if step <= 0 {
			return nil, nil
		}
		t := time.NewTimer(step)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return nil, c.ctx.Err()
		}
		if time.Until(deadline) <= 0 {
			return nil, nil // the backoff is over: the caller's dial is the attempt
		}
		d := net.Dialer{Timeout: probeInterval}
		nc, err := d.DialContext(c.ctx, network, addr)
		if err != nil {
			if c.ctx.Err() != nil {
				return nil, c.ctx.Err()
			}
			continue
		}
		c.mu.Lock()
		c.failures = 0
		c.mu.Unlock()
		c.log.Info("ZooKeeper server answers again; reconnecting before the backoff ran out", "server", addr)
		return nc, nil
	}
}

func (c *connector) consecutiveFailures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures
}

// zkLogger routes go-zookeeper's log lines to slog at debug level: the adapter logs what matters
// (session lost, expired, re-established) itself. One line matters more: after a reconnection
// go-zookeeper re-registers the session's watches with SetWatches, and when that fails it only
// logs, leaving the server without our watches; lostWatches then makes the adapter set them again.
type zkLogger struct {
	log         *slog.Logger
	lostWatches func()
}

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "Failed to set previous watches") && l.lostWatches != nil {
		l.log.Warn("ZooKeeper did not take back the session's watches; setting them again", "err", msg)
		l.lostWatches()
		return
	}
	l.log.Debug(msg, "component", "go-zookeeper")
}

// abs turns an adapter path into a server path.
func (c *conn) abs(p string) string {
	if c.chroot == "" {
		return p
	}
	if p == "/" {
		return c.chroot
	}
	return c.chroot + p
}

// relPath turns a server path from an event back into an adapter path; false if it lies outside
// the chroot.
func relPath(chroot, p string) (string, bool) {
	if chroot == "" {
		return p, true
	}
	if p == chroot {
		return "/", true
	}
	r, ok := strings.CutPrefix(p, chroot+"/")
	return "/" + r, ok
}

// children lists a node's children, setting a child watch when watch is true.
func (c *conn) children(p string, watch bool) ([]string, *zk.Stat, error) {
	c.reads.Add(1)
	if watch {
		ch, st, _, err := c.zk.ChildrenW(c.abs(p))
		return ch, st, err
	}
	return c.zk.Children(c.abs(p))
}

// get reads a node's data, setting a data watch when watch is true.
func (c *conn) get(p string, watch bool) ([]byte, *zk.Stat, error) {
	c.reads.Add(1)
	if watch {
		b, st, _, err := c.zk.GetW(c.abs(p))
		return b, st, err
	}
	return c.zk.Get(c.abs(p))
}

// existsW sets an exists watch, so a missing root is noticed when it is created.
func (c *conn) existsW(p string) (bool, error) {
	c.reads.Add(1)
	ok, _, _, err := c.zk.ExistsW(c.abs(p))
	return ok, err
}

// isConnErr reports errors that mean "not now" (connection or session trouble): the read is
// retried after the session is back, and nothing is concluded about the node.
func isConnErr(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, context.Canceled)
}
