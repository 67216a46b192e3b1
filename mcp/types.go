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

// Collections served to Istiod: version-less "group/Kind". A request for any version of the kind
// ("networking.istio.io/v1alpha3/ServiceEntry", ".../v1/ServiceEntry") is answered from the
// collection, echoing the requested type URL.
const (
	CollectionServiceEntry          = "networking.istio.io/ServiceEntry"
	CollectionWorkloadEntry         = "networking.istio.io/WorkloadEntry"
	CollectionVirtualService        = "networking.istio.io/VirtualService"
	CollectionDestinationRule       = "networking.istio.io/DestinationRule"
	CollectionSidecar               = "networking.istio.io/Sidecar"
	CollectionGateway               = "networking.istio.io/Gateway"
	CollectionWorkloadGroup         = "networking.istio.io/WorkloadGroup"
	CollectionEnvoyFilter           = "networking.istio.io/EnvoyFilter"
	CollectionProxyConfig           = "networking.istio.io/ProxyConfig"
	CollectionAuthorizationPolicy   = "security.istio.io/AuthorizationPolicy"
	CollectionPeerAuthentication    = "security.istio.io/PeerAuthentication"
	CollectionRequestAuthentication = "security.istio.io/RequestAuthentication"
	CollectionTelemetry             = "telemetry.istio.io/Telemetry"
	CollectionWasmPlugin            = "extensions.istio.io/WasmPlugin"
	CollectionTrafficExtension      = "extensions.istio.io/TrafficExtension"
	// CollectionMeshConfig is what Istiod's MeshConfig request maps to. The bridge never sets it:
	// Istiod reads resources[0] of a MeshConfig response as a bare MeshConfig, not an MCP
	// envelope, so it is always answered with an empty list.
	CollectionMeshConfig = "core/MeshConfig"
)

// MeshConfigTypeURL is the first type Istiod's MCP client (pkg/adsc) subscribes to.
const MeshConfigTypeURL = "core/v1alpha1/MeshConfig"

// ResourceTypeURL is the type URL of every entry of resources[] in an MCP response: Istiod
// unmarshals each with anypb.UnmarshalTo into istio.mcp.v1alpha1.Resource, which checks it.
const ResourceTypeURL = "type.googleapis.com/istio.mcp.v1alpha1.Resource"

// IstioTypeURLs returns what Istiod 1.<minor> subscribes to over MCP, in the order its client
// sends them: MeshConfig, then every type of its Pilot collection set (pkg/adsc
// ConfigInitialRequests). Istio <=1.23 names networking, security and telemetry types with their
// beta versions, >=1.24 with v1 (EnvoyFilter stays v1alpha3, ProxyConfig v1beta1), and >=1.30 adds
// TrafficExtension.
func IstioTypeURLs(minor int) []string {
	return append([]string{MeshConfigTypeURL}, IstioPilotTypeURLs(minor)...)
}

// IstioPilotTypeURLs is IstioTypeURLs without MeshConfig: the types whose first response Istiod
// waits for before it reports its config sources synced and opens its xDS port.
func IstioPilotTypeURLs(minor int) []string {
	networking, security, telemetry := "v1", "v1", "v1"
	if minor <= 23 {
		networking, security, telemetry = "v1alpha3", "v1beta1", "v1alpha1"
	}
	// Alphabetical by kind, the order of Istio's generated collections.Pilot.
	urls := []string{
		"security.istio.io/" + security + "/AuthorizationPolicy",
		"networking.istio.io/" + networking + "/DestinationRule",
		"networking.istio.io/v1alpha3/EnvoyFilter",
		"networking.istio.io/" + networking + "/Gateway",
		"security.istio.io/" + security + "/PeerAuthentication",
		"networking.istio.io/v1beta1/ProxyConfig",
		"security.istio.io/" + security + "/RequestAuthentication",
		"networking.istio.io/" + networking + "/ServiceEntry",
		"networking.istio.io/" + networking + "/Sidecar",
		"telemetry.istio.io/" + telemetry + "/Telemetry",
		"extensions.istio.io/v1alpha1/TrafficExtension",
		"networking.istio.io/" + networking + "/VirtualService",
		"extensions.istio.io/v1alpha1/WasmPlugin",
		"networking.istio.io/" + networking + "/WorkloadEntry",
		"networking.istio.io/" + networking + "/WorkloadGroup",
	}
	if minor < 30 {
		urls = append(urls[:10], urls[11:]...) // no TrafficExtension before 1.30
	}
	return urls
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
