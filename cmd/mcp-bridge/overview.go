package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/admin"
	"github.com/mcp-bridge/mcp-bridge/bridge"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/rules"
)

// overviewClients is how many clients the status page lists (all of them: /debug/clients).
const overviewClients = 20

// overview assembles the status page from the pipeline's parts.
func overview(p *pipeline.Pipeline) admin.Overview {
	ov := admin.Overview{Version: version(), LastPush: p.Bridge().LastPush(),
		Registries: []admin.RegistryView{}, Clients: []admin.ClientView{}, Resources: []admin.KindCount{},
		Invalid: []admin.Problem{}, Warnings: []admin.Problem{}, Conflicts: []admin.Problem{}, Rules: []admin.Problem{}}
	ov.Ready, ov.NotReady = p.Ready()
	types := map[string]string{}
	for _, r := range p.Config().Registries {
		types[r.Name] = r.Type
	}
	for _, s := range p.Merger().Status() {
		ov.Registries = append(ov.Registries, registryView(s, types[s.Name]))
	}
	page := p.ShardClients(0, overviewClients)
	ov.ClientsTotal = page.Total
	now := time.Now()
	for _, c := range page.Clients {
		cv := admin.ClientView{ID: c.ID, NodeID: c.NodeID, Peer: c.Peer, Protocol: c.Protocol, ConnectedSince: c.ConnectedSince, Types: []admin.TypeView{}}
		if len(p.Servers()) > 1 {
			cv.Shard = c.Shard
		}
		for _, t := range c.Types {
			tv := admin.TypeView{Kind: kindOf(t.Collection), Sent: t.SentVersion, Acked: t.AckedVersion, Synced: t.Synced, Nacked: t.Nacked}
			if !t.BehindSince.IsZero() { // as mcp_bridge_mcp_client_ack_lag_seconds measures it
				tv.LagSeconds = max(now.Sub(t.BehindSince).Seconds(), 0)
			}
			cv.Types = append(cv.Types, tv)
		}
		ov.Clients = append(ov.Clients, cv)
	}
	for _, g := range p.ShardGaps() {
		ov.ShardGaps = append(ov.ShardGaps, fmt.Sprintf("%s is connected to %s but not to %s: its meshConfig.configSources must list every MCP shard, or it lacks their services",
			g.Client, strings.Join(g.Connected, ", "), strings.Join(g.Missing, ", ")))
	}
	// Registry governance rules Istio cannot express (not applied; /debug/governance has the rest).
	for _, g := range p.Governance("").Rules {
		if g.State != rules.GovUntranslatable {
			continue
		}
		for _, pr := range g.Problems {
			ov.Rules = append(ov.Rules, admin.Problem{Kind: string(g.Kind), Resource: g.Registry + "/" + g.Key, Source: g.Source,
				Reason: rules.GovUntranslatable, Detail: pr.Clause + ": " + pr.Reason})
		}
	}
	if out := p.Bridge().Output(); out != nil {
		for coll, rs := range out.Resources {
			ov.Resources = append(ov.Resources, admin.KindCount{Kind: kindOf(coll), Count: len(rs)})
		}
		slices.SortFunc(ov.Resources, func(a, b admin.KindCount) int { return cmp.Compare(a.Kind, b.Kind) })
		for _, inv := range out.Invalid {
			pr := admin.Problem{Kind: kindOf(inv.Collection), Resource: inv.Namespace + "/" + inv.Name, Source: inv.Source, Reason: inv.Reason, Detail: inv.Detail}
			if inv.Reason == bridge.ReasonProducerConflict {
				ov.Conflicts = append(ov.Conflicts, pr)
			} else {
				ov.Invalid = append(ov.Invalid, pr)
			}
		}
		for _, w := range out.Warnings {
			ov.Warnings = append(ov.Warnings, admin.Problem{Kind: kindOf(w.Collection), Resource: w.Namespace + "/" + w.Name, Source: w.Source, Reason: w.Reason, Detail: w.Detail})
		}
	}
	ov.History = p.History().Stats()
	return ov
}

func registryView(s merge.RegistryStatus, typ string) admin.RegistryView {
	v := admin.RegistryView{Name: s.Name, Type: typ, Synced: s.Synced, Stale: s.Stale, Protected: s.Protected,
		LastSync: s.LastSync, LastError: s.LastError, Services: s.Services, Instances: s.Instances, Rejected: s.RejectedTotal}
	if s.Protection != nil {
		v.Protection = s.Protection.Reason + " since " + s.Protection.Since.Format(time.RFC3339)
	}
	switch {
	case s.Withdrawn:
		v.State = "withdrawn"
	case s.MissedInitialSync:
		v.State = "missed-initial-sync"
	case s.LastError != "":
		v.State = "failing"
	case s.Protected:
		v.State = "protected"
	case s.Stale:
		v.State = "stale"
	case !s.Synced:
		v.State = "syncing"
	default:
		v.State = "synced"
	}
	return v
}

// kindOf is the Kind of a collection ("networking.istio.io/ServiceEntry" -> "ServiceEntry").
func kindOf(coll string) string {
	if k, err := istio.CheckKind(coll[strings.LastIndexByte(coll, '/')+1:]); err == nil {
		return k
	}
	return coll
}
