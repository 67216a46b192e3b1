package zookeeper

import (
	"errors"
	"net"
	"sync"
	"time"
)

// netSwitch is a dialer whose network can be cut: open connections are closed and new dials
// fail until it is restored. It partitions a real client from the real server, so the server
// expires the client's session by itself.
type netSwitch struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (s *netSwitch) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errors.New("network cut by the test")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		s.conns = append(s.conns, c)
	}
	return c, err
}

func (s *netSwitch) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}
