package mcp

import (
	"strings"

	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one Istio config object as served over MCP. The server wraps it in an
// istio.mcp.v1alpha1.Resource envelope whose metadata.name is "<Namespace>/<Name>".
//
// A Resource handed to Set must not be mutated afterwards: the server keeps the marshalled
// envelope keyed by (Namespace, Name, Version) and reuses it while the Version stays the same.
type Resource struct {
	Namespace, Name string
	// Version is a content hash computed by the caller over Body, Labels and Annotations. The same
	// Version means the same content: the server then reuses the bytes it marshalled before, and
	// Istiod skips the object (it updates a stored object only when metadata.version changes).
	// An empty Version is allowed but costs a marshal on every Set and an update in Istiod on
	// every push.
	Version             string
	Labels, Annotations map[string]string
	// Body is the spec, e.g. an Any of type.googleapis.com/istio.networking.v1alpha3.ServiceEntry
	// (Istiod expects the v1alpha3 proto even when the type URL it asked for says v1).
	Body *anypb.Any
}

// CollectionOf maps a type URL to the collection that answers it: "group/version/Kind" becomes
// "group/Kind". A URL of any other shape (e.g. an Envoy type URL) is its own collection, which is
// never set and so is answered with an empty list. A version-less collection name maps to itself.
func CollectionOf(typeURL string) string {
	group, rest, ok := strings.Cut(typeURL, "/")
	if !ok {
		return typeURL
	}
	version, kind, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(kind, "/") || !isAPIVersion(version) || group == "" || kind == "" {
		return typeURL
	}
	return group + "/" + kind
}

// isAPIVersion reports whether s looks like a Kubernetes API version: v1, v1alpha3, v2beta1.
func isAPIVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] < '1' || s[1] > '9' {
		return false
	}
	i := 2
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == len(s) {
		return true
	}
	tail := s[i:]
	for _, q := range []string{"alpha", "beta"} {
		if n, ok := strings.CutPrefix(tail, q); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}
