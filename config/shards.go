package config

import (
	"fmt"
	"net"
	"strconv"
)

// MaxShards bounds mcp.shards: each shard is a listener, an mcp.Server and, in Istiod, one more
// config source with its own stream and store; beyond a few dozen the per-shard overhead is all
// there is to gain (docs/scale.md#sharding).
const MaxShards = 64

// Addresses returns every shard's listen address, shard 0 first: ShardAddresses when set, else
// Shards consecutive ports from Address's (port 0 stays 0: each listener gets a free port).
// Call it on a validated configuration.
func (m MCP) Addresses() []string {
	if len(m.ShardAddresses) > 0 {
		return m.ShardAddresses
	}
	n := max(m.Shards, 1)
	if n == 1 {
		return []string{m.Address}
	}
	host, port, err := net.SplitHostPort(m.Address)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		return []string{m.Address} // not validated; validation names the problem
	}
	out := make([]string, n)
	for i := range out {
		q := p
		if p != 0 {
			q = p + i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(q))
	}
	return out
}

// validateShards checks mcp.shards and mcp.shardAddresses.
func (m MCP) validateShards(ps *problems) {
	if m.Shards < 1 || m.Shards > MaxShards {
		ps.add("mcp.shards", fmt.Sprintf("%d is not from 1 to %d", m.Shards, MaxShards))
		return
	}
	if len(m.ShardAddresses) > 0 {
		if m.Shards != len(m.ShardAddresses) {
			ps.add("mcp.shards", fmt.Sprintf("%d disagrees with the %d entries of mcp.shardAddresses (set one of them)", m.Shards, len(m.ShardAddresses)))
		}
		seen := make(map[string]int, len(m.ShardAddresses))
		for i, a := range m.ShardAddresses {
			path := fmt.Sprintf("mcp.shardAddresses[%d]", i)
			if err := validateAddress(a); err != nil {
				ps.check(path, err)
				continue
			}
			if j, dup := seen[a]; dup && !hasPortZero(a) {
				ps.add(path, fmt.Sprintf("%q is also shard %d's address: each shard needs its own listener", a, j))
			}
			seen[a] = i
		}
		return
	}
	if m.Shards == 1 {
		return
	}
	if _, port, err := net.SplitHostPort(m.Address); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p != 0 && p+m.Shards-1 > 65535 {
			ps.add("mcp.shards", fmt.Sprintf("%d shards from port %d run past port 65535: lower mcp.address's port or list mcp.shardAddresses", m.Shards, p))
		}
	}
}

// CheckListeners reports an MCP shard whose port is the admin listener's (the defaults :18848 and
// 127.0.0.1:18849 are neighbours, so mcp.shards: 2 alone runs into it): one of the two would
// fail to listen at start with a less helpful error. It is not part of Load's validation because
// the command's --mcp-addr, --mcp-shard-addrs and --admin-addr flags override these addresses
// after loading; serve and validate call it on the result.
func (c *Config) CheckListeners() error {
	ah, ap, err := net.SplitHostPort(c.Admin.Address)
	if err != nil || ap == "0" {
		return nil
	}
	key := "mcp.shards"
	if len(c.MCP.ShardAddresses) > 0 {
		key = "mcp.shardAddresses"
	}
	for i, a := range c.MCP.Addresses() {
		if h, p, err := net.SplitHostPort(a); err == nil && p == ap && sameInterface(h, ah) {
			if len(c.MCP.Addresses()) == 1 {
				return fmt.Errorf("mcp.address %s has admin.address's port %s: give them different ports", a, ap)
			}
			return fmt.Errorf("%s: shard %d's address %s has admin.address's port %s: move admin.address (e.g. 127.0.0.1:18899) or list mcp.shardAddresses", key, i, a, ap)
		}
	}
	return nil
}

// sameInterface tells whether two listen hosts can collide on one port: equal, or either one all
// interfaces ("", 0.0.0.0, ::).
func sameInterface(a, b string) bool {
	wildcard := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	return a == b || wildcard(a) || wildcard(b)
}

func hasPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
