package istio

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

func TestTypeURLs(t *testing.T) {
	cases := []struct {
		minor     int
		n         int
		contains  []string
		notExists []string
	}{
		{minor: 22, n: 15, contains: []string{
			"core/v1alpha1/MeshConfig", "networking.istio.io/v1alpha3/ServiceEntry", "networking.istio.io/v1alpha3/WorkloadGroup",
			"networking.istio.io/v1beta1/ProxyConfig", "security.istio.io/v1beta1/AuthorizationPolicy",
			"telemetry.istio.io/v1alpha1/Telemetry", "extensions.istio.io/v1alpha1/WasmPlugin", "networking.istio.io/v1alpha3/EnvoyFilter"},
			notExists: []string{"networking.istio.io/v1/ServiceEntry", "extensions.istio.io/v1alpha1/TrafficExtension"}},
		{minor: 23, n: 15, contains: []string{"networking.istio.io/v1alpha3/Sidecar"}},
		{minor: 24, n: 15, contains: []string{
			"networking.istio.io/v1/ServiceEntry", "networking.istio.io/v1/WorkloadEntry", "security.istio.io/v1/PeerAuthentication",
			"telemetry.istio.io/v1/Telemetry", "networking.istio.io/v1alpha3/EnvoyFilter", "networking.istio.io/v1beta1/ProxyConfig"},
			notExists: []string{"networking.istio.io/v1alpha3/ServiceEntry"}},
		{minor: 29, n: 15, notExists: []string{"extensions.istio.io/v1alpha1/TrafficExtension"}},
		// 1.31: checked against istio.io/istio pkg/config/schema/collections Pilot (15 types) + MeshConfig.
		{minor: 31, n: 16, contains: []string{"extensions.istio.io/v1alpha1/TrafficExtension"}},
	}
	for _, tc := range cases {
		urls := TypeURLs(tc.minor)
		if len(urls) != tc.n || urls[0] != MeshConfigTypeURL {
			t.Errorf("1.%d: %d URLs starting %s, want %d starting with MeshConfig", tc.minor, len(urls), urls[0], tc.n)
		}
		for _, u := range tc.contains {
			if !slices.Contains(urls, u) {
				t.Errorf("1.%d: missing %s", tc.minor, u)
			}
		}
		for _, u := range tc.notExists {
			if slices.Contains(urls, u) {
				t.Errorf("1.%d: unexpected %s", tc.minor, u)
			}
		}
	}
}

// TestSpecTypeURLs: the spec type URLs of the table are those of the protos translate encodes.
func TestSpecTypeURLs(t *testing.T) {
	for want, spec := range map[string]proto.Message{
		SpecTypeURLServiceEntry:  &networking.ServiceEntry{},
		SpecTypeURLWorkloadEntry: &networking.WorkloadEntry{},
	} {
		if got := "type.googleapis.com/" + string(spec.ProtoReflect().Descriptor().FullName()); got != want {
			t.Errorf("spec type URL %s, want %s", want, got)
		}
	}
}

// TestPilotKindsCollections: every kind's collection is unique and the table's constants name
// the kinds the mcp server is set with.
func TestPilotKindsCollections(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range PilotKinds() {
		if seen[k.Collection()] {
			t.Errorf("%s twice", k.Collection())
		}
		seen[k.Collection()] = true
	}
	for _, c := range []string{CollectionServiceEntry, CollectionWorkloadEntry, CollectionVirtualService, CollectionDestinationRule,
		CollectionSidecar, CollectionGateway, CollectionWorkloadGroup, CollectionEnvoyFilter, CollectionProxyConfig,
		CollectionAuthorizationPolicy, CollectionPeerAuthentication, CollectionRequestAuthentication, CollectionTelemetry,
		CollectionWasmPlugin, CollectionTrafficExtension} {
		if !seen[c] {
			t.Errorf("%s is not a kind of the table", c)
		}
	}
}
