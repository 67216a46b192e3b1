package istio

// This file is the one table of Istio kinds, collections and type URLs. No other file of the
// repository spells a collection ("networking.istio.io/ServiceEntry"), an Istio type URL
// ("networking.istio.io/v1/ServiceEntry", "type.googleapis.com/istio....") or an Istio API group
// as a literal; TestDefinedOnce enforces it.

// API groups of the kinds Istiod reads over MCP.
const (
	GroupNetworking = "networking.istio.io"
	GroupSecurity   = "security.istio.io"
	GroupTelemetry  = "telemetry.istio.io"
	GroupExtensions = "extensions.istio.io"
)

// Collections are version-less "group/Kind" strings: the mcp server keys what it serves by them
// and answers a request for any version of a kind ("networking.istio.io/v1alpha3/ServiceEntry",
// ".../v1/ServiceEntry") from the kind's collection, echoing the requested type URL.
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

// MCPResourceTypeURL is the type URL of every entry of resources[] in an MCP response: Istiod
// unmarshals each with anypb.UnmarshalTo into istio.mcp.v1alpha1.Resource, which checks it.
const MCPResourceTypeURL = "type.googleapis.com/istio.mcp.v1alpha1.Resource"

// Type URLs of the specs the translator emits, as the Any in a Resource's Body. Istiod expects
// the v1alpha3 proto for every networking kind, even when the type URL it asked for says v1.
// TestSpecTypeURLs checks them against the protos' descriptors.
const (
	SpecTypeURLServiceEntry  = "type.googleapis.com/istio.networking.v1alpha3.ServiceEntry"
	SpecTypeURLWorkloadEntry = "type.googleapis.com/istio.networking.v1alpha3.WorkloadEntry"
)

// Kind is one kind of Istiod's Pilot collection set, as its MCP client subscribes to it.
type Kind struct {
	Group, Name string
	// Legacy is the version Istio up to 1.23 asks for, Current the one from 1.24.
	Legacy, Current string
	// Since is the first Istio 1.x minor that subscribes to the kind (0: every one).
	Since int
}

// Collection is the kind's "group/Kind".
func (k Kind) Collection() string { return k.Group + "/" + k.Name }

// TypeURL is the type URL Istio 1.<minor> asks for the kind with.
func (k Kind) TypeURL(minor int) string {
	v := k.Current
	if minor <= 23 {
		v = k.Legacy
	}
	return k.Group + "/" + v + "/" + k.Name
}

// pilotKinds is Istio's generated collections.Pilot, alphabetical by kind as Istiod sends them.
var pilotKinds = [...]Kind{
	{GroupSecurity, "AuthorizationPolicy", "v1beta1", "v1", 0},
	{GroupNetworking, "DestinationRule", "v1alpha3", "v1", 0},
	{GroupNetworking, "EnvoyFilter", "v1alpha3", "v1alpha3", 0},
	{GroupNetworking, "Gateway", "v1alpha3", "v1", 0},
	{GroupSecurity, "PeerAuthentication", "v1beta1", "v1", 0},
	{GroupNetworking, "ProxyConfig", "v1beta1", "v1beta1", 0},
	{GroupSecurity, "RequestAuthentication", "v1beta1", "v1", 0},
	{GroupNetworking, "ServiceEntry", "v1alpha3", "v1", 0},
	{GroupNetworking, "Sidecar", "v1alpha3", "v1", 0},
	{GroupTelemetry, "Telemetry", "v1alpha1", "v1", 0},
	{GroupExtensions, "TrafficExtension", "v1alpha1", "v1alpha1", 30},
	{GroupNetworking, "VirtualService", "v1alpha3", "v1", 0},
	{GroupExtensions, "WasmPlugin", "v1alpha1", "v1alpha1", 0},
	{GroupNetworking, "WorkloadEntry", "v1alpha3", "v1", 0},
	{GroupNetworking, "WorkloadGroup", "v1alpha3", "v1", 0},
}

// PilotKinds returns the kinds of Istiod's Pilot collection set, in the order its client sends them.
func PilotKinds() []Kind { return append([]Kind(nil), pilotKinds[:]...) }

// TypeURLs returns what Istiod 1.<minor> subscribes to over MCP, in the order its client sends
// them: MeshConfig, then every type of its Pilot collection set (pkg/adsc ConfigInitialRequests).
// Istio <=1.23 names networking, security and telemetry types with their beta versions, >=1.24
// with v1 (EnvoyFilter stays v1alpha3, ProxyConfig v1beta1), and >=1.30 adds TrafficExtension.
func TypeURLs(minor int) []string {
	return append([]string{MeshConfigTypeURL}, PilotTypeURLs(minor)...)
}

// PilotTypeURLs is TypeURLs without MeshConfig: the types whose first response Istiod waits for
// before it reports its config sources synced and opens its xDS port.
func PilotTypeURLs(minor int) []string {
	urls := make([]string, 0, len(pilotKinds))
	for _, k := range pilotKinds {
		if minor >= k.Since {
			urls = append(urls, k.TypeURL(minor))
		}
	}
	return urls
}
