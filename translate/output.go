package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Collections are version-less "group/Kind" strings, as the mcp package keys them.
const (
	CollectionServiceEntry  = "networking.istio.io/ServiceEntry"
	CollectionWorkloadEntry = "networking.istio.io/WorkloadEntry"
)

// Output is the result of one Translate call. It and everything it points to are shared with
// later calls (unchanged resources are the same *Resource from one call to the next) and must be
// treated as read-only.
type Output struct {
	// Resources by collection, each sorted by namespace/name. Both collections are always present,
	// possibly empty, because every MCP response is the full state of its type.
	Resources map[string][]*Resource
	// Invalid lists what was not emitted and why, sorted by source.
	Invalid []Invalid
	// Warnings lists what was emitted but adjusted, sorted by source.
	Warnings []Warning
}

// InvalidByReason counts Invalid by reason, for the invalid-resources metric.
func (o *Output) InvalidByReason() map[string]int {
	m := map[string]int{}
	for _, i := range o.Invalid {
		m[i.Reason]++
	}
	return m
}

// Resource is one Istio resource ready to send.
type Resource struct {
	Collection          string
	Namespace, Name     string
	Labels, Annotations map[string]string
	// Body is the deterministic marshal of the spec (a *networkingv1alpha3.ServiceEntry or
	// *networkingv1alpha3.WorkloadEntry for translated resources). The spec itself is not kept:
	// at 100k endpoints the protos and their label maps were three quarters of translate's heap,
	// and only the debug pages, render and tests read them; DecodeSpec rebuilds it.
	Body *anypb.Any
	// Version is a hash of Body, Labels and Annotations: equal content, equal version, on every
	// replica and after restarts.
	Version string
	// Source is "<registry>/<service key>", plus "#<instance id>" for a WorkloadEntry.
	Source string
}

// DecodeSpec decodes Body into a new spec of the collection's type. Each call decodes afresh, so
// it is for the debug pages, render and tests, not for a push.
func (r *Resource) DecodeSpec() (proto.Message, error) {
	spec, ok := NewSpec(r.Collection)
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: no spec type for the collection", r.Collection, r.Namespace, r.Name)
	}
	if err := proto.Unmarshal(r.Body.GetValue(), spec); err != nil {
		return nil, fmt.Errorf("decoding %s %s/%s: %w", r.Collection, r.Namespace, r.Name, err)
	}
	return spec, nil
}

// Invalid is a resource that was not emitted.
type Invalid struct {
	Collection, Namespace, Name string
	Source                      string
	// Reason is a short, low-cardinality code for metrics ("invalid-host", "duplicate-host", ...).
	Reason string
	// Detail says precisely what is wrong.
	Detail string
}

// Warning is something emitted but adjusted: a label dropped, a port moved, a service that fell
// back to inline endpoints. Reason and Detail are as in Invalid.
type Warning struct {
	Collection, Namespace, Name string
	Source                      string
	Reason                      string
	Detail                      string
}

// Reasons for Invalid.
const (
	ReasonUnknownRegistry = "unknown-registry"
	ReasonInvalidHost     = "invalid-host"
	ReasonDuplicateHost   = "duplicate-host"
	// Validation failures (validate.go) use the reason of the rule that failed.
	ReasonInvalidName      = "invalid-name"
	ReasonInvalidNamespace = "invalid-namespace"
	ReasonInvalidAddress   = "invalid-address"
	ReasonInvalidPortName  = "invalid-port-name"
	ReasonInvalidProtocol  = "invalid-protocol"
	ReasonInvalidPort      = "invalid-port"
	ReasonDuplicatePort    = "duplicate-port"
	ReasonUndeclaredPort   = "undeclared-endpoint-port"
	ReasonInvalidLabel     = "invalid-label"
	ReasonInvalidSelector  = "invalid-selector"
	ReasonMultipleHostsTCP = "multiple-hosts-tcp"
	ReasonInvalidSpec      = "invalid-spec"
)

// Reasons for Warning.
const (
	reasonLabelDropped       = "label-dropped"
	reasonLabelReserved      = "label-reserved"
	reasonLabelConflict      = "label-conflict"
	reasonLabelRewritten     = "label-rewritten"
	reasonPortConflict       = "port-conflict"
	reasonUnknownProtocol    = "unknown-protocol"
	reasonPortDropped        = "port-dropped"
	reasonMissingPort        = "instance-missing-port"
	reasonUndeclaredPort     = "instance-undeclared-port"
	reasonHostnameAddress    = "hostname-address"
	reasonEndpointAddress    = "invalid-endpoint-address"
	reasonEndpointInvalid    = "endpoint-dropped"
	reasonDuplicateInstance  = "duplicate-instance"
	reasonDuplicateEndpoint  = "duplicate-endpoint"
	reasonAliasShadowed      = "alias-shadowed"
	reasonAliasInvalid       = "alias-invalid"
	reasonWorkloadEntryCap   = "workload-entry-cap"
	reasonVIPExhausted       = "vip-exhausted"
	reasonLocalityAdjusted   = "locality-adjusted"
	reasonWorkloadEntryNames = "workload-entry-name"
)

// notes collects a service's warnings by reason, so that a label dropped on every one of 500
// instances is one warning saying so, not 500. addKeyed splits a reason further (one warning per
// label key rewritten), where one warning per reason would hide all but a few keys.
type notes struct {
	m map[noteKey]*note
}

type noteKey struct{ reason, key string }

type note struct {
	count    int
	examples []string
}

const maxExamples = 5

func (n *notes) add(reason, detail string) { n.addKeyed(reason, "", detail) }

func (n *notes) addKeyed(reason, key, detail string) {
	if n.m == nil {
		n.m = map[noteKey]*note{}
	}
	k := noteKey{reason, key}
	e := n.m[k]
	if e == nil {
		e = &note{}
		n.m[k] = e
	}
	e.count++
	if len(e.examples) < maxExamples && !slices.Contains(e.examples, detail) {
		e.examples = append(e.examples, detail)
	}
}

// warnings renders the notes as warnings sharing base's location, sorted by reason and key.
func (n *notes) warnings(base Warning) []Warning {
	if len(n.m) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(n.m), func(a, b noteKey) int { return cmpStrings(a.reason, b.reason, a.key, b.key) })
	out := make([]Warning, 0, len(n.m))
	for _, k := range keys {
		e := n.m[k]
		w := base
		w.Reason = k.reason
		w.Detail = strings.Join(e.examples, "; ")
		if e.count > len(e.examples) {
			w.Detail += fmt.Sprintf(" (%d times in all)", e.count)
		}
		out = append(out, w)
	}
	return out
}

func compareInvalid(a, b Invalid) int {
	return cmpStrings(a.Source, b.Source, a.Collection, b.Collection, a.Namespace, b.Namespace,
		a.Name, b.Name, a.Reason, b.Reason, a.Detail, b.Detail)
}

func compareWarning(a, b Warning) int {
	return cmpStrings(a.Source, b.Source, a.Collection, b.Collection, a.Namespace, b.Namespace,
		a.Name, b.Name, a.Reason, b.Reason, a.Detail, b.Detail)
}

func compareResource(a, b *Resource) int {
	return cmpStrings(a.Namespace, b.Namespace, a.Name, b.Name)
}

// cmpStrings compares pairs in order: cmpStrings(a1, b1, a2, b2, ...).
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}
