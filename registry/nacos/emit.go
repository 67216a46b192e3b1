package nacos

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// valid builds an output and checks it; an invalid one is rejected (once) and counts as absent.
func (st *state) valid(k registry.Key) *registry.Service {
	svc := st.build(k)
	var err error
	if svc != nil {
		err = svc.Validate()
	}
	if err != nil {
		if st.invalid[k] != err.Error() {
			st.invalid[k] = err.Error()
			st.a.sink.Reject(outputWhere(k), "invalid-service", err)
		}
		return nil
	}
	if _, ok := st.invalid[k]; ok {
		delete(st.invalid, k)
		st.a.sink.Accept(outputWhere(k))
	}
	return svc
}

func outputWhere(k registry.Key) string { return "nacos:" + k.String() }

// diff returns what changed among the dirty outputs since they were last sent.
func (st *state) diff() (upserts []*registry.Service, deletes []registry.Key) {
	keys := sortedKeys(st.dirtyKeys)
	st.dirtyKeys = make(map[registry.Key]bool)
	for _, k := range keys {
		svc := st.valid(k)
		if svc == nil {
			if _, ok := st.emitted[k]; ok {
				delete(st.emitted, k)
				deletes = append(deletes, k)
			}
			continue
		}
		fp := fingerprint(svc)
		if old, ok := st.emitted[k]; ok && old == fp {
			continue
		}
		st.emitted[k] = fp
		upserts = append(upserts, svc)
	}
	return upserts, deletes
}

// all builds every output, for Replace.
func (st *state) all() []*registry.Service {
	st.dirtyKeys = make(map[registry.Key]bool)
	st.emitted = make(map[registry.Key]uint64, len(st.contrib))
	keys := make(map[registry.Key]bool, len(st.contrib))
	for k := range st.contrib {
		keys[k] = true
	}
	for k := range st.invalid {
		keys[k] = true // so that one gone meanwhile is accepted
	}
	out := make([]*registry.Service, 0, len(st.contrib))
	for _, k := range sortedKeys(keys) {
		if svc := st.valid(k); svc != nil {
			st.emitted[k] = fingerprint(svc)
			out = append(out, svc)
		}
	}
	return out
}

// fingerprint hashes a service's content. The sink owns what it is sent (and may change it), so
// the adapter remembers hashes, not services.
func fingerprint(svc *registry.Service) uint64 {
	b, _ := json.Marshal(svc) // maps marshal sorted: deterministic
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func sortedKeys(m map[registry.Key]bool) []registry.Key {
	return slices.SortedFunc(maps.Keys(m), func(a, b registry.Key) int { return strings.Compare(a.String(), b.String()) })
}

// take moves what the SDK callbacks recorded into the state.
func (a *Adapter) take() (oldest time.Time, n int) {
	a.mu.Lock()
	type item struct {
		s         *subscription
		instances []model.Instance
	}
	items := make([]item, 0, len(a.dirty))
	for s := range a.dirty {
		if s.received {
			items = append(items, item{s, s.instances})
			if oldest.IsZero() || s.pushedAt.Before(oldest) {
				oldest = s.pushedAt
			}
		}
	}
	a.dirty = make(map[*subscription]struct{})
	pending := a.mappingPending
	a.mappingPending = make(map[nsIface]string)
	a.mu.Unlock()
	for k, data := range pending {
		a.st.applyMapping(k, data)
	}
	for _, it := range items {
		a.st.update(it.s, it.instances)
	}
	a.takeRules()
	return oldest, len(items)
}

// flush sends the services and rules that changed since the last flush. The rule configs to
// watch follow the services: they are brought in line when instances changed, a rule read failed
// or refresh is set (a poll, a resync).
func (a *Adapter) flush(ctx context.Context, refresh bool) {
	oldest, n := a.take()
	if refresh || n > 0 || a.rules.retry {
		a.refreshRules(ctx)
	}
	a.emitRules(false)
	upserts, deletes := a.st.diff()
	if len(upserts) > 0 {
		a.sink.Upsert(upserts)
	}
	if len(deletes) > 0 {
		a.sink.Delete(deletes)
		a.log.Info("Nacos services deregistered", "services", len(deletes))
	}
	if n > 0 && !oldest.IsZero() {
		a.met.pushToSink.Observe(time.Since(oldest).Seconds())
	}
	if len(upserts)+len(deletes) > 0 {
		a.updateCounts()
	}
}

// replace sends the full state, rules first.
func (a *Adapter) replace(ctx context.Context) {
	a.take()
	a.refreshRules(ctx)
	a.emitRules(true)
	services := a.st.all()
	a.sink.Replace(services)
	a.updateCounts()
}
