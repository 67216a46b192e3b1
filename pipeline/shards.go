package pipeline

import (
	"fmt"
	"log/slog"
	"net"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/mcp"
)

// newServers builds one MCP server per shard. One shard is today's single server, its metrics
// labelled server="mcp"; with several, shard i's are labelled server="shard-<i>".
func newServers(base mcp.Options, cfg config.MCP, log *slog.Logger, reg prometheus.Registerer) []*mcp.Server {
	n := max(cfg.Shards, len(cfg.ShardAddresses), 1)
	servers := make([]*mcp.Server, n)
	for i := range servers {
		o := base
		o.Name, o.Logger, o.Metrics, o.Limits, o.Pacing = "mcp", log.With("component", "mcp"), reg, cfg.Limits, cfg.Pacing
		o.DisableIstiodFill = cfg.FillIstiodBuffer != nil && !*cfg.FillIstiodBuffer
		if n > 1 {
			o.Name = ShardName(i)
			o.Logger = log.With("component", "mcp", "shard", i)
		}
		servers[i] = mcp.NewServer(o)
	}
	return servers
}

// ShardName is shard i's name: its metrics' server label and its name on /debug/clients.
func ShardName(i int) string { return fmt.Sprintf("shard-%d", i) }

// ShardClient is a connected client and the shard it is connected to (/debug/clients).
type ShardClient struct {
	Shard string `json:"shard"`
	mcp.ClientStatus
}

// ShardClientPage is one page of /debug/clients over every shard.
type ShardClientPage struct {
	Total   int           `json:"total"`
	Offset  int           `json:"offset"`
	Limit   int           `json:"limit"`
	Clients []ShardClient `json:"clients"`
}

// Clients is /debug/clients: with one shard, its server's page as it always was; with several,
// every shard's clients, oldest first, each naming its shard.
func (p *Pipeline) Clients(offset, limit int) any {
	if len(p.servers) == 1 {
		return p.server.ClientsPage(offset, limit)
	}
	return p.ShardClients(offset, limit)
}

// ShardClients is one page of the clients of every shard, oldest first, each naming its shard
// (all of them when limit < 0). Each shard holds at most mcp.limits.maxStreams streams.
func (p *Pipeline) ShardClients(offset, limit int) ShardClientPage {
	if len(p.servers) == 1 { // only the page's streams inspected, as before sharding
		one := p.server.ClientsPage(offset, limit)
		page := ShardClientPage{Total: one.Total, Offset: one.Offset, Limit: one.Limit, Clients: make([]ShardClient, len(one.Clients))}
		for i, c := range one.Clients {
			page.Clients[i] = ShardClient{Shard: ShardName(0), ClientStatus: c}
		}
		return page
	}
	var all []ShardClient
	for i, s := range p.servers {
		for _, c := range s.Clients() {
			all = append(all, ShardClient{Shard: ShardName(i), ClientStatus: c})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].ConnectedSince.Before(all[j].ConnectedSince) })
	page := ShardClientPage{Total: len(all), Offset: offset, Limit: limit, Clients: []ShardClient{}}
	offset = min(max(offset, 0), len(all))
	end := len(all)
	if limit >= 0 {
		end = min(end, offset+limit)
	}
	page.Clients = append(page.Clients, all[offset:end]...)
	return page
}

// ShardGap is an MCP client connected to some shards but not all: an Istiod whose configSources
// lack the other shards' xds:// addresses, so those shards' services are missing from it.
type ShardGap struct {
	// Client is the client's node id (its peer's host when it sent none).
	Client    string   `json:"client"`
	Connected []string `json:"connected"`
	Missing   []string `json:"missing"`
}

// ShardGaps lists the clients connected to some shards but not all (none with one shard). An
// Istiod opens its config sources one after another at start, so a gap lasting seconds is normal;
// one that lasts is a configSources list that does not match mcp.shards.
func (p *Pipeline) ShardGaps() []ShardGap {
	if len(p.servers) == 1 {
		return nil
	}
	on := map[string]map[int]bool{}
	for i, s := range p.servers {
		for _, c := range s.Clients() {
			id := c.NodeID
			if id == "" {
				id = peerHost(c.Peer)
			}
			if on[id] == nil {
				on[id] = map[int]bool{}
			}
			on[id][i] = true
		}
	}
	var gaps []ShardGap
	for id, shards := range on {
		if len(shards) == len(p.servers) {
			continue
		}
		g := ShardGap{Client: id}
		for i := range p.servers {
			if shards[i] {
				g.Connected = append(g.Connected, ShardName(i))
			} else {
				g.Missing = append(g.Missing, ShardName(i))
			}
		}
		gaps = append(gaps, g)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].Client < gaps[j].Client })
	return gaps
}

// peerHost is a peer address without its port.
func peerHost(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}

// registerShardMetrics exports the shard gaps: an Istiod missing a shard lacks services without
// any error anywhere else.
func (p *Pipeline) registerShardMetrics(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mcp_bridge_mcp_clients_missing_shards",
		Help: "MCP clients (Istiods, by node id) connected to some MCP shards but not all (mcp.shards): their configSources lack the other shards, whose services they do not get. Always 0 with one shard.",
	}, func() float64 { return float64(len(p.ShardGaps())) }))
}
