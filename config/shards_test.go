package config

import (
	"slices"
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
