package bridge

import (
	"cmp"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcp-bridge/mcp-bridge/history"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
)

// Push triggers, for the history's cause.
const (
	triggerRegistry = "registry"
	triggerReload   = "reload"
)

// recordHistory hands the resources this push created, changed or deleted to the history store,
// rendered as the YAML /debug/resources shows. It walks only the collections that changed, each a
// merge of two slices sorted by namespace/name comparing pointers (producers keep an unchanged
// resource's pointer), and renders only what changed.
func (b *Bridge) recordHistory(snap *merge.Snapshot, trigger string, prev map[string][]*istio.Resource, next map[string][]*istio.Resource, changedColls []string) {
	var changes []history.Change
	add := func(r *istio.Resource, deleted bool) {
		c := history.Change{Kind: collectionKind(r.Collection), Namespace: r.Namespace, Name: r.Name, Source: r.Source, Deleted: deleted}
		if !deleted {
			obj, err := object(r, true)
			if err == nil {
				var y []byte
				if y, err = yaml.Marshal(obj); err == nil {
					c.YAML = string(y)
				}
			}
			if err != nil {
				b.log.Warn("resource history: rendering failed; version not recorded", "resource", r.Namespace+"/"+r.Name, "error", err)
				return
			}
		}
		changes = append(changes, c)
	}
	for _, coll := range changedColls {
		a, z := prev[coll], next[coll]
		i, j := 0, 0
		for i < len(a) || j < len(z) {
			var c int
			switch {
			case i == len(a):
				c = 1
			case j == len(z):
				c = -1
			default:
				c = cmp.Or(cmp.Compare(a[i].Namespace, z[j].Namespace), cmp.Compare(a[i].Name, z[j].Name))
			}
			switch {
			case c < 0:
				add(a[i], true)
				i++
			case c > 0:
				add(z[j], false)
				j++
			default:
				if a[i] != z[j] && a[i].Version != z[j].Version {
					add(z[j], false)
				}
				i, j = i+1, j+1
			}
		}
	}
	cause := history.Cause{Trigger: trigger}
	switch {
	case trigger == triggerReload:
	case b.pushes == 0:
		cause.Trigger = "start"
	default:
		cause.Registries, cause.Services, cause.Rules = snap.Events, snap.Changed, snap.RulesChanged
	}
	b.opts.History.Record(time.Now(), cause, changes)
}
