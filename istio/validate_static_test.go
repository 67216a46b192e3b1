package istio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

// specCase is one case of testdata/static/<kind>.yaml. The same files feed the cross-check
// against Istio's own validation (see the package report), which asserts that Istio rejects
// every case with problems unless it is marked stricter, and accepts every other case.
type specCase struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"` // default "ns"
	Spec      map[string]any `json:"spec"`
	// Want are the problems, in order, each a substring of one reported problem; none = valid.
	Want []string `json:"want"`
	// Stricter marks a case Istio accepts and we refuse on purpose.
	Stricter bool `json:"stricter"`
}

var specCaseFiles = map[string]string{
	CollectionVirtualService:  "virtualservice.yaml",
	CollectionDestinationRule: "destinationrule.yaml",
	CollectionSidecar:         "sidecar.yaml",
	CollectionServiceEntry:    "serviceentry.yaml",
	CollectionWorkloadEntry:   "workloadentry.yaml",
}

func loadSpecCases(t *testing.T, file string) []specCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "static", file))
	if err != nil {
		t.Fatal(err)
	}
	var cases []specCase
	if err := yaml.UnmarshalStrict(b, &cases); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cases
}

// decodeSpec reads a case's spec as bridge.LoadStatic does: YAML -> JSON -> protojson.
func decodeSpec(t *testing.T, collection string, spec map[string]any) proto.Message {
	t.Helper()
	js, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if js, err = yaml.YAMLToJSON(js); err != nil {
		t.Fatal(err)
	}
	m, ok := NewSpec(collection)
	if !ok {
		t.Fatalf("NewSpec(%q) unknown", collection)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("spec does not decode: %v\n%s", err, js)
	}
	return m
}

// problems lists the joined errors of ValidateSpec.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

// checkProblems asserts that got has exactly the wanted problems, in order.
func checkProblems(t *testing.T, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.Contains(got[i], want[i])
	}
	if !ok {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestValidateSpec runs the table of each kind in testdata/static: valid specs, and invalid
// ones per rule with the field path and reason each problem must give.
func TestValidateSpec(t *testing.T) {
	for coll, file := range specCaseFiles {
		t.Run(collectionKindName(coll), func(t *testing.T) {
			cases := loadSpecCases(t, file)
			if len(cases) < 5 {
				t.Fatalf("%s has only %d cases", file, len(cases))
			}
			for _, tc := range cases {
				t.Run(tc.Name, func(t *testing.T) {
					ns := tc.Namespace
					if ns == "" {
						ns = "ns"
					}
					spec := decodeSpec(t, coll, tc.Spec)
					checkProblems(t, problems(ValidateSpec(coll, ns, spec)), tc.Want)
				})
			}
		})
	}
}

func collectionKindName(c string) string { return c[strings.LastIndexByte(c, '/')+1:] }

// TestValidateSpecGoOnly covers what YAML cannot express: null list and map elements (protojson
// refuses them, but a spec built in Go may have them, and Istio skips or panics on some) and
// values too large to write in a table.
func TestValidateSpecGoOnly(t *testing.T) {
	dest := func(h string) []*networking.HTTPRouteDestination {
		return []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: h}}}
	}
	vs := func(r ...*networking.HTTPRoute) *networking.VirtualService {
		return &networking.VirtualService{Hosts: []string{"a.example"}, Http: r}
	}
	for _, tc := range []struct {
		name       string
		collection string
		spec       proto.Message
		want       []string
	}{
		{"null http route", CollectionVirtualService, vs(nil), []string{"http[0]: http route may not be null"}},
		{"null match and header", CollectionVirtualService, vs(&networking.HTTPRoute{Route: dest("a.example"),
			Match: []*networking.HTTPMatchRequest{nil, {Headers: map[string]*networking.StringMatch{"x": nil}}}}),
			[]string{"http[0].match[0]: match may not be null", `http[0].match[1].headers["x"]: header match x cannot be null`}},
		{"null destination and mirror", CollectionVirtualService, vs(&networking.HTTPRoute{
			Route:   []*networking.HTTPRouteDestination{nil, {Destination: &networking.Destination{Host: "a.example"}, Weight: 1}},
			Mirrors: []*networking.HTTPMirrorPolicy{nil}}),
			[]string{"http[0].mirrors[0]: mirror cannot be null", "http[0].route[0]: weight may not be nil"}},
		{"null origin", CollectionVirtualService, vs(&networking.HTTPRoute{Route: dest("a.example"),
			CorsPolicy: &networking.CorsPolicy{AllowOrigins: []*networking.StringMatch{nil}}}),
			[]string{"http[0].corsPolicy.allowOrigins[0]: an allowed origin needs"}},
		{"null tcp and tls", CollectionVirtualService, &networking.VirtualService{Hosts: []string{"a.example"},
			Tcp: []*networking.TCPRoute{nil, {Match: []*networking.L4MatchAttributes{nil}}},
			Tls: []*networking.TLSRoute{nil}},
			[]string{"tls[0]: tls route may not be null", "tcp[0]: tcp route may not be null", "tcp[1].match[0]: tcp match may not be null", "tcp[1].route: TCP route is required"}},
		{"regex too long", CollectionVirtualService, vs(&networking.HTTPRoute{Route: dest("a.example"),
			Match: []*networking.HTTPMatchRequest{{Uri: &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: strings.Repeat("a", 1025)}}}}}),
			[]string{"http[0].match[0].uri.regex: regex is too large"}},
		{"direct response too large", CollectionVirtualService, vs(&networking.HTTPRoute{DirectResponse: &networking.HTTPDirectResponse{Status: 200,
			Body: &networking.HTTPBody{Specifier: &networking.HTTPBody_Bytes{Bytes: make([]byte, 1<<20+1)}}}}),
			[]string{"http[0].directResponse.body: large direct_responses"}},
		{"null subset and port policy", CollectionDestinationRule, &networking.DestinationRule{Host: "a.example",
			Subsets:       []*networking.Subset{nil},
			TrafficPolicy: &networking.TrafficPolicy{PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{nil}}},
			[]string{"trafficPolicy.portLevelSettings[0]: traffic policy may not be null", "subsets[0]: subset may not be null"}},
		{"null listeners", CollectionSidecar, &networking.Sidecar{Ingress: []*networking.IstioIngressListener{nil}, Egress: []*networking.IstioEgressListener{nil}},
			[]string{"ingress[0]: sidecar: ingress may not be null", "egress[0]: egress listener may not be null"}},
		{"null service entry port and endpoint", CollectionServiceEntry, &networking.ServiceEntry{Hosts: []string{"a.example"},
			Ports: []*networking.ServicePort{nil}, Resolution: networking.ServiceEntry_STATIC, Endpoints: []*networking.WorkloadEntry{nil}},
			[]string{"ports[0]: service entry port may not be null", "endpoints[0]: endpoint 0 cannot be nil"}},
		{"wrong spec type", CollectionSidecar, &networking.VirtualService{}, []string{"spec is a istio.networking.v1alpha3.VirtualService, want istio.networking.v1alpha3.Sidecar"}},
		{"no spec", CollectionSidecar, nil, []string{"spec is missing"}},
		{"unknown collection", "networking.istio.io/Gateway", &networking.Gateway{}, []string{"networking.istio.io/Gateway cannot be validated; supported kinds: networking.istio.io/DestinationRule, "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, problems(ValidateSpec(tc.collection, "ns", tc.spec)), tc.want)
		})
	}
}

// TestNewResourceValidates: NewResource wraps only what ValidateSpec and the metadata rules
// accept, and its error names the resource and every problem.
func TestNewResourceValidates(t *testing.T) {
	good := &networking.DestinationRule{Host: "a.example", Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}}
	r, err := NewResource(CollectionDestinationRule, "shop", "a", map[string]string{"team": "x"}, nil, good)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version == "" || r.Body.GetTypeUrl() != "type.googleapis.com/istio.networking.v1alpha3.DestinationRule" {
		t.Errorf("resource not wrapped: %+v", r)
	}

	for _, tc := range []struct {
		name                  string
		namespace, objectName string
		labels, annotations   map[string]string
		spec                  proto.Message
		want                  string
	}{
		{"one spec problem", "shop", "a", nil, nil, &networking.DestinationRule{},
			"DestinationRule shop/a: host: empty domain name not allowed"},
		{"every problem listed", "Shop", "A_b", map[string]string{"k": "-v"}, map[string]string{"istio.io/dry-run": "true", "internal.istio.io/route-semantics": "gateway"},
			&networking.DestinationRule{Host: "bad_host!"},
			`DestinationRule Shop/A_b: 6 problems:
  - metadata.namespace: "Shop" is not a DNS-1123 label
  - metadata.name: "A_b" is not a DNS-1123 subdomain
  - metadata.labels["k"]: invalid label value "-v"
  - metadata.annotations["internal.istio.io/route-semantics"]: reserved for Istio; Istiod drops resources that set it
  - metadata.annotations["istio.io/dry-run"]: reserved for Istio; Istiod drops resources that set it
  - host: domain name "bad_host!" invalid (label "bad_host!" invalid)`},
		{"kind not validated", "shop", "a", nil, nil, &networking.Gateway{}, "cannot be validated; supported kinds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			coll := CollectionDestinationRule
			if _, ok := tc.spec.(*networking.Gateway); ok {
				coll = "networking.istio.io/Gateway"
			}
			r, err := NewResource(coll, tc.namespace, tc.objectName, tc.labels, tc.annotations, tc.spec)
			if err == nil {
				t.Fatalf("wrapped %v", r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var fe *Problem
			if !errors.As(err, &fe) && coll == CollectionDestinationRule {
				t.Errorf("problems are not reachable with errors.As: %v", err)
			}
		})
	}
}

func TestSpecCollections(t *testing.T) {
	got := strings.Join(SpecCollections(), " ")
	want := "networking.istio.io/DestinationRule networking.istio.io/ServiceEntry networking.istio.io/Sidecar networking.istio.io/VirtualService networking.istio.io/WorkloadEntry"
	if got != want {
		t.Errorf("SpecCollections() = %s, want %s", got, want)
	}
	for _, c := range SpecCollections() {
		if _, ok := specCaseFiles[c]; !ok {
			t.Errorf("%s has no table in testdata/static", c)
		}
	}
	if _, ok := NewSpec("networking.istio.io/EnvoyFilter"); ok {
		t.Error("NewSpec knows EnvoyFilter, which has no validator")
	}
}
