package config

import (
	"slices"
	"strings"
	"testing"
)

func TestShardAddresses(t *testing.T) {
	tests := []struct {
		name, mcp string
		want      []string
	}{
		{"default: one listener on mcp.address", "", []string{":18848"}},
		{"shards: 1 is today's single listener", "mcp:\n  shards: 1\n", []string{":18848"}},
		{"consecutive ports from mcp.address", "mcp:\n  address: 10.0.0.1:7000\n  shards: 3\n", []string{"10.0.0.1:7000", "10.0.0.1:7001", "10.0.0.1:7002"}},
		{"port 0: every shard gets a free port", "mcp:\n  address: 127.0.0.1:0\n  shards: 2\n", []string{"127.0.0.1:0", "127.0.0.1:0"}},
		{"an explicit list sets the shard count", "mcp:\n  shardAddresses: [':9000', ':9100']\n", []string{":9000", ":9100"}},
		{"an explicit list and a matching count", "mcp:\n  shards: 2\n  shardAddresses: [':9000', ':9100']\n", []string{":9000", ":9100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.mcp + fileRegistry))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MCP.Addresses(); !slices.Equal(got, tt.want) {
				t.Errorf("Addresses() = %q, want %q", got, tt.want)
			}
			if c.MCP.Shards != len(tt.want) {
				t.Errorf("Shards = %d, want %d", c.MCP.Shards, len(tt.want))
			}
		})
	}
}

func TestCheckListeners(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string // "" = no conflict
	}{
		{"defaults: one MCP port", "", ""},
		{"two shards over the default admin port", "mcp: {shards: 2}\n", "mcp.shards: shard 1's address :18849 has admin.address's port 18849: move admin.address"},
		{"shards with admin moved", "mcp: {shards: 4}\nadmin: {address: '127.0.0.1:18899'}\n", ""},
		{"a listed shard on the admin port", "mcp: {shardAddresses: [':7000', ':18849']}\n", "mcp.shardAddresses: shard 1's address :18849"},
		{"one MCP port on the admin port", "mcp: {address: ':18849'}\n", "mcp.address :18849 has admin.address's port 18849"},
		{"same port on two different interfaces", "mcp: {address: '127.0.0.2:18849'}\n", ""},
		{"same port, admin on all interfaces", "mcp: {address: '127.0.0.2:18849'}\nadmin: {address: ':18849'}\n", "mcp.address 127.0.0.2:18849 has admin.address's port"},
		{"admin on port 0", "mcp: {shards: 3}\nadmin: {address: '127.0.0.1:0'}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc + fileRegistry))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckListeners()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckListeners: %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckListeners: %v, want %q", err, tt.want)
			}
		})
	}
}
