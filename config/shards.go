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

// validateShards checks mcp.shards and mcp.shardAddresses; admin is admin.address, which the
// consecutive ports must not run into (the defaults :18848 and 127.0.0.1:18849 are neighbours).
func (m MCP) validateShards(ps *problems, admin string) {
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
		m.checkAdminPort(ps, "mcp.shardAddresses", admin)
		return
	}
	if m.Shards == 1 {
		return
	}
	if _, port, err := net.SplitHostPort(m.Address); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p != 0 && p+m.Shards-1 > 65535 {
			ps.add("mcp.shards", fmt.Sprintf("%d shards from port %d run past port 65535: lower mcp.address's port or list mcp.shardAddresses", m.Shards, p))
			return
		}
	}
	m.checkAdminPort(ps, "mcp.shards", admin)
}

// checkAdminPort reports a shard whose port is the admin listener's: one of the two would fail
// to listen at start, with a less helpful error.
func (m MCP) checkAdminPort(ps *problems, path, admin string) {
	_, ap, err := net.SplitHostPort(admin)
	if err != nil || ap == "0" {
		return
	}
	for i, a := range m.Addresses() {
		if _, p, err := net.SplitHostPort(a); err == nil && p == ap {
			ps.add(path, fmt.Sprintf("shard %d's address %s has admin.address's port %s: move admin.address (e.g. 127.0.0.1:18899) or list mcp.shardAddresses", i, a, ap))
		}
	}
}

func hasPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
