package pipeline

import (
	"reflect"
	"slices"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Plan is what applying a new configuration to a running bridge does.
type Plan struct {
	// Unchanged registries keep running untouched: no resync, no endpoint removed.
	Unchanged []string `json:"unchanged,omitempty"`
	// Changed registries (their type or type block differs) are restarted: the new adapter's first
	// full state is compared with what is served like any resync, so nothing it still has is
	// removed meanwhile.
	Changed []string `json:"changed,omitempty"`
	// Added registries start; their first sync is awaited (up to protection.initialSyncTimeout)
	// before removed ones go, so a renamed registry's services never leave the mesh. Removed ones
	// stop and their services are withdrawn.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Translate: translate options, a registry's namespace or hosts, or the registries translate
	// must name changed. A new translator (keeping every host's VIP) serves from the next push.
	Translate bool `json:"translate,omitempty"`
	// NeedsRestart names options that differ but cannot change while the bridge runs; they keep
	// their running value until a restart.
	NeedsRestart []string `json:"needsRestart,omitempty"`
}

// Empty tells whether the plan changes nothing (static resources are re-read on every reload).
func (p Plan) Empty() bool {
	return len(p.Changed) == 0 && len(p.Added) == 0 && len(p.Removed) == 0 && !p.Translate
}

// Diff compares the running configuration with a new one.
func Diff(old, next *config.Config) Plan {
	var p Plan
	oldRegs := make(map[string]config.Registry, len(old.Registries))
	for _, r := range old.Registries {
		oldRegs[r.Name] = r
	}
	nextNames := make(map[string]bool, len(next.Registries))
	for _, r := range next.Registries {
		nextNames[r.Name] = true
		o, ok := oldRegs[r.Name]
		switch {
		case !ok:
			p.Added = append(p.Added, r.Name)
			p.Translate = true // the translator must know how to name the newcomer
		case !sameSource(o, r):
			p.Changed = append(p.Changed, r.Name)
		default:
			p.Unchanged = append(p.Unchanged, r.Name)
		}
		if ok && (o.Namespace != r.Namespace || o.Hosts != r.Hosts) {
			p.Translate = true
		}
	}
	for _, r := range old.Registries {
		if !nextNames[r.Name] {
			// The running translator keeps naming a removed registry until its services are
			// gone: no new translator needed for a removal alone.
			p.Removed = append(p.Removed, r.Name)
		}
	}
	ot, nt := old.Translate, next.Translate
	ot.Registries, nt.Registries = nil, nil
	// vipCIDR needs a restart (below): VIPs must not move while running.
	ot.VIPCIDR, nt.VIPCIDR = "", ""
	if !reflect.DeepEqual(ot, nt) {
		p.Translate = true
	}
	p.NeedsRestart = needsRestart(old, next)
	return p
}

// sameSource tells whether two entries of one registry read the same source the same way: what
// decides whether its adapter must restart (namespace and hosts are translate's business).
func sameSource(a, b config.Registry) bool {
	a.Namespace, b.Namespace = "", ""
	a.Hosts, b.Hosts = translate.HostTemplates{}, translate.HostTemplates{}
	return reflect.DeepEqual(a, b)
}

// needsRestart lists the options that differ and cannot change in a running bridge: the
// listeners, logging, the state file, and the merge layer's policies, which hold state (debounce
// timers, protection holds, duplicate priorities) a change would have to re-interpret.
func needsRestart(old, next *config.Config) []string {
	var out []string
	add := func(key string, differ bool) {
		if differ {
			out = append(out, key)
		}
	}
	add("mcp.address", old.MCP.Address != next.MCP.Address)
	add("mcp.tls", old.MCP.TLS != next.MCP.TLS)
	// The shards are listeners, and Istiod's configSources list one xds:// per shard: a new count
	// moves services between shards, which only a restart of both can do without Istiod seeing a
	// service deleted from one source before another adds it.
	shards := old.MCP.Shards != next.MCP.Shards || !slices.Equal(old.MCP.ShardAddresses, next.MCP.ShardAddresses)
	add("mcp.shards", shards)
	if old.MCP.Address == next.MCP.Address && old.MCP.TLS == next.MCP.TLS && !shards {
		add("mcp", !reflect.DeepEqual(old.MCP, next.MCP))
	}
	add("admin", !reflect.DeepEqual(old.Admin, next.Admin))
	add("log", !reflect.DeepEqual(old.Log, next.Log))
	add("state", !reflect.DeepEqual(old.State, next.State))
	add("debounce", !reflect.DeepEqual(old.Debounce, next.Debounce))
	add("protection", !reflect.DeepEqual(old.Protection, next.Protection))
	add("duplicates", !reflect.DeepEqual(old.Duplicates, next.Duplicates))
	add("translate.vipCIDR", old.Translate.VIPCIDR != next.Translate.VIPCIDR)
	// Registries that stay keep their configuration order, which is the duplicates priority.
	var oldOrder, nextOrder []string
	names := make(map[string]bool)
	for _, r := range next.Registries {
		names[r.Name] = true
	}
	for _, r := range old.Registries {
		if names[r.Name] {
			oldOrder = append(oldOrder, r.Name)
		}
	}
	kept := make(map[string]bool, len(oldOrder))
	for _, n := range oldOrder {
		kept[n] = true
	}
	for _, r := range next.Registries {
		if kept[r.Name] {
			nextOrder = append(nextOrder, r.Name)
		}
	}
	add("registries (order: the duplicates priority)", !slices.Equal(oldOrder, nextOrder))
	return out
}
