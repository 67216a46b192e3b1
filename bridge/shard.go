package bridge

import (
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
)

// sourceStatic is the Source of every static resource (staticResources files).
const sourceStatic = "static"

// ShardKey is what decides a resource's MCP shard (mcp.shards, docs/scale.md#sharding): the
// service identity it was made from, so that a service's ServiceEntry, its WorkloadEntries and
// its rules' VirtualService and DestinationRule always land in one shard and a change to one
// service touches one shard:
//   - a resource made from a registry service: its Source up to the first '#' —
//     "<registry>/<service key>" (a WorkloadEntry's "#<instance id>" cut off; a '#' inside the
//     service key cuts the ServiceEntry's Source at the same place, so they still agree);
//   - a Sidecar scope (one per consumer application) and a static resource (whose Source is
//     "static" for all of them): its own "<namespace>/<name>", spreading them over the shards.
//
// Every resource gets exactly one key, so it is served by exactly one shard: names never collide
// across shards. The key does not depend on the shard count or on other resources.
func ShardKey(r *istio.Resource) string {
	if r.Source == "" || r.Source == sourceStatic || r.Collection == istio.CollectionSidecar {
		return r.Namespace + "/" + r.Name
	}
	if i := strings.IndexByte(r.Source, '#'); i >= 0 {
		return r.Source[:i]
	}
	return r.Source
}

// ShardOf is the shard, 0 to n-1, serving r among n: FNV-1a 64 of ShardKey(r), modulo n. Stable
// across restarts, replicas and versions (a documented function of the key, not Go's map hash).
func ShardOf(r *istio.Resource, n int) int {
	if n <= 1 {
		return 0
	}
	return int(fnv1a64(ShardKey(r)) % uint64(n))
}

// fnv1a64 is hash/fnv's New64a over s, without the allocation of a hash.Hash and a []byte copy
// per resource.
func fnv1a64(s string) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	return h
}

// shards splits each push over the MCP servers, one per shard, and hands each server only the
// collections whose share changed: a change to one service re-sends one shard's collection.
type shards struct {
	servers []*mcp.Server
	// split caches each collection's last split: the inputs and each one's shard, so a push
	// hashes only resources that are new at their position.
	split map[string]*splitCache
	// parts is what each shard was last handed per collection.
	parts []map[string][]*mcp.Resource
}

type splitCache struct {
	in    []*istio.Resource
	shard []uint8 // config.MaxShards is 64
}

func newShards(servers []*mcp.Server) *shards {
	s := &shards{servers: servers, split: make(map[string]*splitCache)}
	s.parts = make([]map[string][]*mcp.Resource, len(servers))
	for i := range s.parts {
		s.parts[i] = make(map[string][]*mcp.Resource)
	}
	return s
}

// set hands the changed collections (convert's changed: nil = the collection is gone) to the
// servers. in holds the istio form of every served collection, parallel to changed's slices.
// One server: changed as it is, today's single-listener path. changedAt is the registry event
// behind the push (zero: none), from which mcp times change -> send.
func (s *shards) set(in map[string][]*istio.Resource, changed map[string][]*mcp.Resource, changedAt time.Time) {
	if len(s.servers) == 1 {
		s.servers[0].SetAt(changed, changedAt)
		return
	}
	per := make([]map[string][]*mcp.Resource, len(s.servers))
	for i := range per {
		per[i] = make(map[string][]*mcp.Resource)
	}
	for coll, out := range changed {
		if out == nil {
			delete(s.split, coll)
			for i, parts := range s.parts {
				if _, ok := parts[coll]; ok {
					per[i][coll] = nil
					delete(parts, coll)
				}
			}
			continue
		}
		idx := s.shardsOf(coll, in[coll])
		counts := make([]int, len(s.servers))
		for _, i := range idx {
			counts[i]++
		}
		next := make([][]*mcp.Resource, len(s.servers))
		for i, c := range counts {
			if c > 0 {
				next[i] = make([]*mcp.Resource, 0, c)
			}
		}
		for j, r := range out {
			next[idx[j]] = append(next[idx[j]], r)
		}
		for i, part := range next {
			prev, ok := s.parts[i][coll]
			if ok && samePointers(prev, part) {
				continue
			}
			if part == nil {
				part = []*mcp.Resource{} // set, empty: the shard answers the type, with nothing
			}
			s.parts[i][coll] = part
			per[i][coll] = part
		}
	}
	// Every server gets its Set, even an empty one: the first releases the requests it holds
	// since start-up; later empty ones change nothing and wake no client.
	for i, srv := range s.servers {
		srv.SetAt(per[i], changedAt)
	}
}

// shardsOf returns each resource's shard, reusing the last split's where the same resource is at
// the same position (the usual case: a few changed in place).
func (s *shards) shardsOf(coll string, in []*istio.Resource) []uint8 {
	prev := s.split[coll]
	idx := make([]uint8, len(in))
	for j, r := range in {
		if prev != nil && j < len(prev.in) && prev.in[j] == r {
			idx[j] = prev.shard[j]
			continue
		}
		idx[j] = uint8(ShardOf(r, len(s.servers)))
	}
	s.split[coll] = &splitCache{in: in, shard: idx}
	return idx
}

func samePointers(a, b []*mcp.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
