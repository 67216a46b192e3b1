package bridge

import (
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
	// triggerDrain is a staged push's second stage: the held endpoints' grace ended.
	triggerDrain = "drain"
)

// recordHistory hands the resources this push created, changed or deleted to the history store.
// It walks only the collections that changed, each a merge of two slices sorted by
// namespace/name comparing pointers (producers keep an unchanged resource's pointer), and hands
// over the immutable resources themselves: they are rendered as YAML only when someone asks for a
// diff, because rendering 30,000 resources at start-up takes tens of seconds of CPU.
func (b *Bridge) recordHistory(snap *merge.Snapshot, trigger string, prev map[string][]*istio.Resource, next map[string][]*istio.Resource, changedColls []string) {
	var changes []history.Change
	add := func(r *istio.Resource, deleted bool) {
		c := history.Change{Kind: collectionKind(r.Collection), Namespace: r.Namespace, Name: r.Name, Source: r.Source, Deleted: deleted}
		if !deleted {
			c.Content = resourceContent{r}
		}
		changes = append(changes, c)
	}
	for _, coll := range changedColls {
		walk(prev[coll], next[coll], func(a, z *istio.Resource) {
			switch {
			case z == nil:
				add(a, true)
			case a == nil:
				add(z, false)
			case a != z && a.Version != z.Version:
				add(z, false)
			}
		})
	}
	cause := history.Cause{Trigger: trigger}
	switch {
	case trigger == triggerReload, trigger == triggerDrain:
	case b.pushes == 0:
		cause.Trigger = "start"
	default:
		cause.Registries, cause.Services, cause.Rules = snap.Events, snap.Changed, snap.RulesChanged
	}
	b.opts.History.Record(time.Now(), cause, changes)
}

// resourceContent is a served resource as a history version: rendered like /debug/resources.
type resourceContent struct{ r *istio.Resource }

func (c resourceContent) Text() (string, error) {
	obj, err := object(c.r, true)
	if err != nil {
		return "", err
	}
	y, err := yaml.Marshal(obj)
	return string(y), err
}

// resourceOverhead approximates the istio.Resource struct, its strings and maps beyond Body.
const resourceOverhead = 256

// Size is what the resource holds. The newest version of a resource is the one being served, so
// this counts memory the bridge would hold anyway: the budget errs on the safe side.
func (c resourceContent) Size() int {
	n := resourceOverhead + len(c.r.Body.GetValue()) + len(c.r.Body.GetTypeUrl()) + len(c.r.Name) + len(c.r.Namespace) + len(c.r.Version) + len(c.r.Source)
	for k, v := range c.r.Labels {
		n += len(k) + len(v) + 32
	}
	for k, v := range c.r.Annotations {
		n += len(k) + len(v) + 32
	}
	return n
}
