package istio

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

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

// NewResource wraps a spec that did not come from a registry (a static resource from a file) the
// way translated resources are wrapped: a deterministic body and a content-hash version, so it
// costs Istiod nothing while it does not change. It refuses, listing every problem, a resource
// Istiod would drop: invalid metadata, a spec ValidateSpec rejects, or a collection it cannot
// validate.
func NewResource(collection, namespace, name string, labels, annotations map[string]string, spec proto.Message) (*Resource, error) {
	problems := append(checkMeta(namespace, name, labels, annotations), validateSpec(collection, namespace, spec)...)
	if len(problems) > 0 {
		return nil, &resourceError{Kind: collection[strings.LastIndexByte(collection, '/')+1:], Namespace: namespace, Name: name, Problems: problems}
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %s/%s: %w", collection, namespace, name, err)
	}
	return &Resource{
		Collection:  collection,
		Namespace:   namespace,
		Name:        name,
		Labels:      labels,
		Annotations: annotations,
		Body:        &anypb.Any{TypeUrl: "type.googleapis.com/" + string(spec.ProtoReflect().Descriptor().FullName()), Value: body},
		Version:     Version(body, labels, annotations),
	}, nil
}

// resourceError lists why a resource would be dropped by Istiod.
type resourceError struct {
	Kind, Namespace, Name string
	// Problems, one per broken rule, each naming its field ("metadata.name: ...", "hosts[0]: ...").
	Problems []error
}

// Error names the resource and lists its problems, one per line when there are several.
func (e *resourceError) Error() string {
	id := e.Kind + " " + e.Namespace + "/" + e.Name
	if len(e.Problems) == 1 {
		return id + ": " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", id, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - " + strings.ReplaceAll(p.Error(), "\n", "\n    "))
	}
	return b.String()
}

func (e *resourceError) Unwrap() []error { return e.Problems }

// reservedAnnotations are refused on every resource, as Istio's validation refuses them (or, for
// route-semantics, relaxes its VirtualService rules on them, which our rules do not mirror):
// istio.io/dry-run (AuthorizationPolicy only) and Istio's internal annotations.
func reservedAnnotation(k string) bool {
	return k == "istio.io/dry-run" || strings.HasPrefix(k, "internal.istio.io/")
}

// checkMeta checks what Istiod checks of every object's metadata, and what Kubernetes would:
// DNS-1123 names, valid label keys and values, no reserved annotations.
func checkMeta(namespace, name string, labels, annotations map[string]string) []error {
	c := &specCheck{}
	if !IsDNSLabel(namespace) {
		c.addf("metadata.namespace", "%q is not a DNS-1123 label", namespace)
	}
	if !IsDNSSubdomain(name) {
		c.addf("metadata.name", "%q is not a DNS-1123 subdomain", name)
	}
	checkLabelsAt(c, "metadata.labels", labels)
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		if reservedAnnotation(k) {
			c.addf(keyPath("metadata.annotations", k), "reserved for Istio; Istiod drops resources that set it")
		}
	}
	return c.errs
}

// Version hashes body, labels and annotations (keys sorted, fields separated by bytes that
// cannot occur in them) into 16 hex digits of SHA-256: equal content, equal version, on every
// replica and after restarts, which is what lets Istiod and the mcp server skip unchanged objects.
func Version(body []byte, labels, annotations map[string]string) string {
	h := sha256.New()
	h.Write(body)
	for _, m := range []map[string]string{labels, annotations} {
		h.Write([]byte{0xff})
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write([]byte(m[k]))
			h.Write([]byte{0})
		}
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}
