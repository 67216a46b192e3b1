package bridge

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Producer turns the merged snapshot into Istio resources. The bridge calls its producers in
// order, serially, once per snapshot.
//
// Contract, which keeps a push O(changed): each collection's slice is sorted by namespace/name; a
// resource that did not change since the previous call is the same *istio.Resource, and a
// collection that did not change is the same slice. A resource is never mutated once returned.
type Producer interface {
	// Name identifies the producer in conflicts, logs and metrics ("translate", "static").
	Name() string
	Produce(snap *merge.Snapshot) *Production
}

// Production is what one producer made of a snapshot.
type Production struct {
	// Resources by collection (istio.Collection*), each sorted by namespace/name.
	Resources map[string][]*istio.Resource
	// Invalid lists what it did not emit and why; Warnings what it emitted adjusted.
	Invalid  []istio.Invalid
	Warnings []istio.Warning
}

// TranslateProducer makes ServiceEntries and WorkloadEntries of the registry services.
type TranslateProducer struct {
	t       *translate.Translator
	prepare func([]*registry.Service) []*registry.Service
	last    *translate.Output
}

// Translate returns the producer of translated resources.
func Translate(t *translate.Translator) *TranslateProducer { return &TranslateProducer{t: t} }

// TranslateWith is Translate with a step that adjusts the services before they are translated:
// the rules engine marks instances that lack a label it routes by (rules.Engine.Prepare), because
// an Istio subset can only select labels that are present. prepare must follow the snapshot's
// pointer contract (an unchanged service keeps its pointer) and never mutate its input.
func TranslateWith(t *translate.Translator, prepare func([]*registry.Service) []*registry.Service) *TranslateProducer {
	return &TranslateProducer{t: t, prepare: prepare}
}

// Name is "translate".
func (p *TranslateProducer) Name() string { return "translate" }

// Produce translates the snapshot's services.
func (p *TranslateProducer) Produce(snap *merge.Snapshot) *Production {
	services := snap.Services
	if p.prepare != nil {
		services = p.prepare(services)
	}
	out := p.t.Translate(services)
	p.last = out
	return &Production{Resources: out.Resources, Invalid: out.Invalid, Warnings: out.Warnings}
}

// Last is the translation of the last Produce (nil before it), for producers later in the list
// that need what translate emitted (Output.Hosts) during the same push.
func (p *TranslateProducer) Last() *translate.Output { return p.last }

// staticProducer serves the operator's static resources, the same ones on every push.
type staticProducer struct{ p *Production }

// Static returns the producer of resources read by LoadStatic.
func Static(rs []*istio.Resource) Producer {
	return &staticProducer{p: &Production{Resources: groupByCollection(rs)}}
}

func (s *staticProducer) Name() string { return "static" }

func (s *staticProducer) Produce(*merge.Snapshot) *Production { return s.p }

// ReasonProducerConflict is the Invalid reason of a resource not served because an earlier
// producer emits one of the same collection, namespace and name.
const ReasonProducerConflict = "producer-conflict"

// Conflict is two producers emitting the same collection/namespace/name. The producer earlier in
// the list wins; the loser's resource is not served.
type Conflict struct {
	Collection, Namespace, Name string
	Winner, Loser               string // producer names
	// WinnerSource and LoserSource are the resources' Source.
	WinnerSource, LoserSource string
}

func (c Conflict) invalid() istio.Invalid {
	return istio.Invalid{Collection: c.Collection, Namespace: c.Namespace, Name: c.Name, Source: c.LoserSource,
		Reason: ReasonProducerConflict,
		Detail: fmt.Sprintf("producers %s (source %q) and %s (source %q) both emit it; %s is earlier in the producer list and is served",
			c.Winner, c.WinnerSource, c.Loser, c.LoserSource, c.Winner)}
}

// mergedCollection is one collection as served: the producers' slices it was made of (to tell
// whether it changed) and the result.
type mergedCollection struct {
	inputs    [][]*istio.Resource
	out       []*istio.Resource
	conflicts []Conflict
}

// mergeCollection combines the producers' slices of one collection. A collection only one
// producer emits is that producer's slice as it is; one several emit is merged by namespace/name,
// the earlier producer winning a name, and is recomputed only when one of its inputs changed.
func mergeCollection(coll string, names []string, inputs [][]*istio.Resource, prev *mergedCollection) *mergedCollection {
	if prev != nil && len(prev.inputs) == len(inputs) && slices.EqualFunc(prev.inputs, inputs, sameSlice) {
		return prev
	}
	m := &mergedCollection{inputs: inputs}
	type item struct {
		r *istio.Resource
		p int
	}
	nonEmpty, n := 0, 0
	for _, in := range inputs {
		if len(in) > 0 {
			nonEmpty, n = nonEmpty+1, n+len(in)
			m.out = in // used as it is when it is the only one
		}
	}
	if nonEmpty < 2 {
		return m
	}
	items := make([]item, 0, n)
	for p, in := range inputs {
		for _, r := range in {
			items = append(items, item{r, p})
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.r.Namespace, b.r.Namespace), cmp.Compare(a.r.Name, b.r.Name), cmp.Compare(a.p, b.p))
	})
	m.out = make([]*istio.Resource, 0, len(items))
	winner := 0 // producer of the last resource served
	for i, it := range items {
		if i > 0 && it.r.Namespace == items[i-1].r.Namespace && it.r.Name == items[i-1].r.Name {
			m.conflicts = append(m.conflicts, Conflict{Collection: coll, Namespace: it.r.Namespace, Name: it.r.Name,
				Winner: names[winner], Loser: names[it.p], WinnerSource: m.out[len(m.out)-1].Source, LoserSource: it.r.Source})
			continue
		}
		m.out = append(m.out, it.r)
		winner = it.p
	}
	return m
}

// sameSlice reports whether a and b are the same slice (same backing array and length), which
// producers guarantee for a collection that did not change.
func sameSlice(a, b []*istio.Resource) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
