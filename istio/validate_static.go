package istio

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"
)

// Static resources are operator-written Istio resources served as they are (bridge.LoadStatic).
// Istiod validates every MCP resource with pkg/config/validation and drops the invalid ones
// silently while ACKing, so each spec is checked here first and nothing unchecked is ever
// wrapped (NewResource calls ValidateSpec). Only kinds with validators here are accepted.
//
// The rules mirror Istio's (ValidateVirtualService, ValidateDestinationRule, ValidateSidecar,
// and for ServiceEntry/WorkloadEntry the validators in validate.go). Where a rule is not
// mirrored exactly, ours is stricter, never looser, and says so in a comment. Warnings of
// Istio's that would not make Istiod drop a resource are not reported, except where the rule
// says why it refuses one.

// specKind is how one collection's spec is made and checked.
type specKind struct {
	collection string
	newSpec    func() proto.Message
	check      func(proto.Message, *specCheck)
}

// specKinds is the table of kinds a static resource may have, sorted by collection.
var specKinds = []specKind{
	{CollectionDestinationRule, func() proto.Message { return &networking.DestinationRule{} }, rules(destinationRuleRules)},
	{CollectionServiceEntry, func() proto.Message { return &networking.ServiceEntry{} }, rules(serviceEntrySpecRules)},
	{CollectionSidecar, func() proto.Message { return &networking.Sidecar{} }, rules(sidecarRules)},
	{CollectionVirtualService, func() proto.Message { return &networking.VirtualService{} }, rules(virtualServiceRules)},
	{CollectionWorkloadEntry, func() proto.Message { return &networking.WorkloadEntry{} }, rules(workloadEntrySpecRules)},
}

// rules turns a kind's list of rules into its check.
func rules[T proto.Message](rs []func(T, *specCheck)) func(proto.Message, *specCheck) {
	return func(m proto.Message, c *specCheck) {
		spec := m.(T)
		for _, r := range rs {
			r(spec, c)
		}
	}
}

// SpecCollections lists the collections ValidateSpec knows, sorted.
func SpecCollections() []string {
	out := make([]string, len(specKinds))
	for i, k := range specKinds {
		out[i] = k.collection
	}
	return out
}

// NewSpec returns an empty spec of the collection's proto type, or false when the collection is
// not one ValidateSpec knows.
func NewSpec(collection string) (proto.Message, bool) {
	k, ok := findSpecKind(collection)
	if !ok {
		return nil, false
	}
	return k.newSpec(), true
}

func findSpecKind(collection string) (specKind, bool) {
	i := slices.IndexFunc(specKinds, func(k specKind) bool { return k.collection == collection })
	if i < 0 {
		return specKind{}, false
	}
	return specKinds[i], true
}

// ValidateSpec checks the spec of a resource of the collection in the namespace (exportTo "."
// and configmap:// credentials refer to it) by Istio's rules. The error joins one error per
// problem, each naming the field's path in the YAML form, e.g.
// `http[0].route[1].destination.host: empty domain name not allowed`; nil means Istiod accepts it.
func ValidateSpec(collection, namespace string, spec proto.Message) error {
	return errors.Join(validateSpec(collection, namespace, spec)...)
}

func validateSpec(collection, namespace string, spec proto.Message) []error {
	k, ok := findSpecKind(collection)
	if !ok {
		return []error{fmt.Errorf("%s cannot be validated; supported kinds: %s", collection, strings.Join(SpecCollections(), ", "))}
	}
	if spec == nil || !spec.ProtoReflect().IsValid() {
		return []error{fmt.Errorf("%s: spec is missing", collection)}
	}
	if want := k.newSpec(); want.ProtoReflect().Descriptor() != spec.ProtoReflect().Descriptor() {
		return []error{fmt.Errorf("%s: spec is a %s, want %s", collection,
			spec.ProtoReflect().Descriptor().FullName(), want.ProtoReflect().Descriptor().FullName())}
	}
	c := &specCheck{namespace: namespace}
	k.check(spec, c)
	checkValues(c, "", spec.ProtoReflect())
	return c.errs
}

// specCheck collects the problems of one spec.
type specCheck struct {
	namespace string
	errs      []error
}

// addf records a problem at path. Static rules have no reason code of their own: they are
// reported by text, and count as invalid-spec.
func (c *specCheck) addf(path, format string, a ...any) {
	c.errs = append(c.errs, &Problem{Path: path, Reason: ReasonInvalidSpec, Detail: fmt.Sprintf(format, a...)})
}

// add records err, if any, at path.
func (c *specCheck) add(path string, err error) {
	if err != nil {
		c.errs = append(c.errs, &Problem{Path: path, Reason: ReasonInvalidSpec, Detail: err.Error()})
	}
}

func (c *specCheck) addProblems(ps []Problem) {
	for i := range ps {
		c.errs = append(c.errs, &ps[i])
	}
}

// checkValues walks every set field for what protojson lets through but Istio cannot use:
// enum numbers the API does not define (Istio takes them for the zero value or rejects them
// case by case; we refuse them all, which is stricter) and NaN or infinite numbers (which pass
// Istio's range checks because every comparison with NaN is false).
func checkValues(c *specCheck, path string, m protoreflect.Message) {
	if !m.IsValid() {
		return // a null message: the kind's rules report it where Istio does
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := joinPath(path, fd.JSONName())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				checkValue(c, indexPath(at, i), fd, l.Get(i))
			}
		case fd.IsMap():
			var keys []protoreflect.MapKey
			v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				checkValue(c, keyPath(at, k.String()), fd.MapValue(), v.Map().Get(k))
			}
		default:
			checkValue(c, at, fd, v)
		}
		return true
	})
}

func checkValue(c *specCheck, path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkValues(c, path, v.Message())
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByNumber(v.Enum()) == nil {
			c.addf(path, "%d is not a value of %s", v.Enum(), fd.Enum().Name())
		}
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			c.addf(path, "%v is not a number Istio can use", f)
		}
	}
}

// serviceEntrySpecRules are the bridge's own ServiceEntry rules (validate.go), stricter than
// Istio's: no wildcard hosts, STATIC or DNS resolution only, a known protocol on every port, a
// workload selector with labels; plus Istio's exportTo rule, which the bridge never needed.
var serviceEntrySpecRules = []func(*networking.ServiceEntry, *specCheck){
	func(se *networking.ServiceEntry, c *specCheck) { c.addProblems(validateServiceEntry(se)) },
	func(se *networking.ServiceEntry, c *specCheck) {
		checkExportTo(c, "exportTo", se.ExportTo, exportServiceEntry)
	},
}

// workloadEntrySpecRules check a standalone WorkloadEntry (validate.go), stricter than Istio's:
// an address is required (Istio allows none when a network is set) and unix:// addresses are
// refused.
var workloadEntrySpecRules = []func(*networking.WorkloadEntry, *specCheck){
	func(we *networking.WorkloadEntry, c *specCheck) {
		c.addProblems(ValidateWorkloadEntry(we, WorkloadEntryContext{AllowNames: true}))
	},
}
