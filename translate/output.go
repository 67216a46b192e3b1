package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// Output is the result of one Translate call. It and everything it points to are shared with
// later calls (unchanged resources are the same *Resource from one call to the next) and must be
// treated as read-only.
type Output struct {
	// Resources by collection, each sorted by namespace/name. Both collections are always present,
	// possibly empty, because every MCP response is the full state of its type.
	Resources map[string][]*istio.Resource
	// Invalid lists what was not emitted and why, sorted by source.
	Invalid []istio.Invalid
	// Warnings lists what was emitted but adjusted, sorted by source.
	Warnings []istio.Warning
	// Hosts lists, for every service with a ServiceEntry emitted, the hosts it was emitted under,
	// sorted by source: what a producer of VirtualServices or DestinationRules for a service
	// needs, without decoding specs. HostsOf looks a service up.
	Hosts []ServiceHosts
}

// ServiceHosts is the hosts one service was emitted under: its primary host first, then the alias
// hosts it owns, whether they share its ServiceEntry or have their own.
type ServiceHosts struct {
	// Source is the service's "<registry>/<service key>", as in istio.Resource.Source.
	Source string
	// Namespace is where its ServiceEntries are.
	Namespace string
	Hosts     []string
	// Ports are its ServiceEntry's ports, by number: a routing producer needs to know which
	// speak HTTP/gRPC (request matches apply) and which plain TCP (only weights do).
	Ports []HostPort
}

// HostPort is one ServiceEntry port as emitted.
type HostPort struct {
	Name     string // Istio port name ("grpc-tri", "tcp-dubbo")
	Number   uint32
	Protocol string // Istio protocol ("GRPC", "HTTP", "TCP", ...)
}

// HostsOf returns the hosts the service with this source ("<registry>/<service key>") was
// emitted under, or nil when it has no ServiceEntry.
func (o *Output) HostsOf(source string) []string {
	i, ok := slices.BinarySearchFunc(o.Hosts, source, func(h ServiceHosts, s string) int { return strings.Compare(h.Source, s) })
	if !ok {
		return nil
	}
	return o.Hosts[i].Hosts
}

// InvalidByReason counts Invalid by reason, for the invalid-resources metric.
func (o *Output) InvalidByReason() map[string]int {
	m := map[string]int{}
	for _, i := range o.Invalid {
		m[i.Reason]++
	}
	return m
}

// Reasons for Invalid.
const (
	ReasonUnknownRegistry = "unknown-registry"
	ReasonDuplicateHost   = "duplicate-host"
	// A host the templates give that Istio would refuse is istio.ReasonInvalidHost; failures of
	// the other validation rules (package istio) carry the reason of the rule that failed.
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
func (n *notes) warnings(base istio.Warning) []istio.Warning {
	if len(n.m) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(n.m), func(a, b noteKey) int { return cmpStrings(a.reason, b.reason, a.key, b.key) })
	out := make([]istio.Warning, 0, len(n.m))
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

func compareInvalid(a, b istio.Invalid) int {
	return cmpStrings(a.Source, b.Source, a.Collection, b.Collection, a.Namespace, b.Namespace,
		a.Name, b.Name, a.Reason, b.Reason, a.Detail, b.Detail)
}

func compareWarning(a, b istio.Warning) int {
	return cmpStrings(a.Source, b.Source, a.Collection, b.Collection, a.Namespace, b.Namespace,
		a.Name, b.Name, a.Reason, b.Reason, a.Detail, b.Detail)
}

func compareServiceHosts(a, b ServiceHosts) int { return strings.Compare(a.Source, b.Source) }

func compareResource(a, b *istio.Resource) int {
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
