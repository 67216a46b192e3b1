package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// TestBridgeListensOnlyOnItsTwoPorts: the bridge process takes connections and datagrams on the
// MCP listener(s: one per shard with mcp.shards) and admin listener only (README "Ports"), with its embedded example config and with
// a registry of every type on real servers. Every other socket is a connection the bridge
// made to a registry server. The Nacos SDK's own naming client would add a UDP listener on all
// interfaces (54951-55950) that rewrites services for anyone who sends it a datagram.
func TestBridgeListensOnlyOnItsTwoPorts(t *testing.T) {
	t.Parallel()
	bin := suite.Build(t, bridgePackage)
	p := servers.StartPolaris(t)
	z := servers.StartZooKeeper(t)
	c := servers.StartConsul(t, servers.ConsulOptions{})
	registries := fmt.Sprintf(`registries:
  - name: nacos-ports
    type: nacos
    nacos: {servers: [%q], flavor: polaris, pollInterval: 300ms, cacheDir: %q}
  - name: zk-ports
    type: zookeeper
    zookeeper: {servers: [%q]}
  - name: consul-ports
    type: consul
    consul: {address: %q, wait: 2s}
  - name: eureka-ports
    type: eureka
    eureka: {servers: [%q], interval: 1s}
`, p.NacosAddr(), t.TempDir(), z.Addr(), c.Addr(), p.EurekaURL())

	for _, tc := range []struct {
		name string
		opts servers.BridgeOptions
		// servers the bridge may be connected to
		peers []string
	}{
		{"embedded", servers.BridgeOptions{Embedded: true}, nil},
		// mcp.shards: one MCP listener per shard, and still nothing else.
		{"embedded, 3 shards", servers.BridgeOptions{Embedded: true, Shards: 3}, nil},
		{"every registry type", servers.BridgeOptions{Config: registries}, []string{
			p.NacosAddr(), grpcAddr(t, p.NacosAddr()), z.Addr(), c.Addr(), strings.TrimPrefix(strings.TrimSuffix(p.EurekaURL(), "/eureka"), "http://"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Binary = bin
			b := servers.StartBridge(t, tc.opts)
			time.Sleep(2 * time.Second) // several polls: whatever the registries open is open now
			socks, err := servers.Sockets(b.PID())
			if err != nil {
				t.Fatal(err)
			}
			allowed := map[string]bool{b.AdminAddr: true}
			for _, a := range b.MCPAddrs {
				allowed[a] = true
			}
			peers := map[string]bool{}
			for _, a := range tc.peers {
				peers[a] = true
			}
			listening := map[string]bool{}
			for _, s := range socks {
				t.Logf("socket: %s", s)
				local := net.JoinHostPort(s.Local.String(), strconv.Itoa(s.Port))
				remote := net.JoinHostPort(s.Remote.String(), strconv.Itoa(s.RPort))
				switch {
				case s.Listening && allowed[local]:
					listening[local] = true
				case s.Listening:
					t.Errorf("unexpected listener %s", s)
				case allowed[local]:
					// an accepted connection (a readiness probe of the test)
				case !peers[remote]:
					t.Errorf("connection to %s, which is none of the registry servers %v", remote, tc.peers)
				}
			}
			if len(listening) != len(b.MCPAddrs)+1 {
				t.Errorf("listening on %v, want the MCP (%s) and admin (%s) addresses", listening, b.MCPAddrs, b.AdminAddr)
			}
		})
	}
}

// grpcAddr is the Nacos gRPC address of a Nacos HTTP address: port + 1000.
func grpcAddr(t *testing.T, httpAddr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1000))
}
