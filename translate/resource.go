package translate

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// NewResource wraps a spec that did not come from a registry (a static resource from a file) the
// way translated resources are wrapped: a deterministic body and a content-hash version, so it
// costs Istiod nothing while it does not change.
func NewResource(collection, namespace, name string, labels, annotations map[string]string, spec proto.Message) (*Resource, error) {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %s/%s: %w", collection, namespace, name, err)
	}
	if p := validateMeta(namespace, name, labels); p != "" {
		return nil, fmt.Errorf("%s %s/%s: %s", collection, namespace, name, p)
	}
	return &Resource{
		Collection:  collection,
		Namespace:   namespace,
		Name:        name,
		Labels:      labels,
		Annotations: annotations,
		Spec:        spec,
		Body:        &anypb.Any{TypeUrl: "type.googleapis.com/" + string(spec.ProtoReflect().Descriptor().FullName()), Value: body},
		Version:     version(body, labels, annotations),
	}, nil
}

// validateMeta checks what Istiod checks of every object's metadata: DNS-1123 names and valid
// label keys and values. It returns "" when they are fine.
func validateMeta(namespace, name string, labels map[string]string) string {
	if !isDNS1123Label(namespace) {
		return fmt.Sprintf("namespace %q is not a DNS-1123 label", namespace)
	}
	if !isDNSSubdomain(name) {
		return fmt.Sprintf("name %q is not a DNS-1123 subdomain", name)
	}
	for k, v := range labels {
		if !validLabelKey(k) {
			return fmt.Sprintf("label key %q is not valid", k)
		}
		if !validLabelValue(v) {
			return fmt.Sprintf("label %s value %q is not valid", k, v)
		}
	}
	return ""
}
