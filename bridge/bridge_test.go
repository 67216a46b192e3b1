package bridge

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

const staticGood = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: orders-split
  namespace: shop
spec:
  hosts: [orders.file]
  http:
  - route:
    - destination: {host: orders.file, subset: v1}
      weight: 90
    - destination: {host: orders.file, subset: v2}
      weight: 10
---
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: orders
  namespace: shop
  labels: {team: payments}
spec:
  host: orders.file
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

func writeStatic(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "static.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadStatic(t *testing.T) {
	rs, err := LoadStatic([]string{writeStatic(t, staticGood)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d resources, want 2 (empty documents skipped)", len(rs))
	}
	// Sorted by collection: DestinationRule before VirtualService.
	dr, vs := rs[0], rs[1]
	if dr.Collection != "networking.istio.io/DestinationRule" || vs.Collection != "networking.istio.io/VirtualService" {
		t.Fatalf("collections %q, %q", dr.Collection, vs.Collection)
	}
	vsSpec, err := vs.DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	drSpec, err := dr.DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	if got := vsSpec.(*networking.VirtualService).Http[0].Route[1].Weight; got != 10 {
		t.Errorf("second route weight %d, want 10", got)
	}
	if dr.Labels["team"] != "payments" || len(drSpec.(*networking.DestinationRule).Subsets) != 2 {
		t.Errorf("destination rule decoded wrong: %+v %v", dr.Labels, drSpec)
	}
	if dr.Body.TypeUrl != "type.googleapis.com/istio.networking.v1alpha3.DestinationRule" {
		t.Errorf("body type %q", dr.Body.TypeUrl)
	}
	again, _ := LoadStatic([]string{writeStatic(t, staticGood)})
	if again[0].Version != dr.Version || again[1].Version != vs.Version {
		t.Error("versions differ between two loads of the same content")
	}
}

// TestLoadStaticKinds: each kind a static file may hold loads, in any of its API versions.
func TestLoadStaticKinds(t *testing.T) {
	tests := []struct {
		name, doc, collection string
	}{
		{"VirtualService", "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: a, namespace: shop}\nspec:\n  hosts: [a.file]\n  http: [{route: [{destination: {host: a.file}}]}]\n",
			istio.CollectionVirtualService},
		{"DestinationRule", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: shop}\nspec:\n  host: a.file\n  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n",
			istio.CollectionDestinationRule},
		{"Sidecar", "apiVersion: networking.istio.io/v1beta1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec:\n  egress: [{hosts: [\"./*\", \"istio-system/*\"]}]\n",
			istio.CollectionSidecar},
		{"ServiceEntry", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: legacy, namespace: shop}\nspec:\n  hosts: [legacy.example]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n",
			istio.CollectionServiceEntry},
		{"WorkloadEntry", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm-1, namespace: shop}\nspec: {address: 10.0.0.7, labels: {app: legacy}}\n",
			istio.CollectionWorkloadEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := LoadStatic([]string{writeStatic(t, tt.doc)})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].Collection != tt.collection || rs[0].Source != "static" || rs[0].Version == "" {
				t.Fatalf("got %+v", rs)
			}
		})
	}
}

// invalidDocs are the two resources of e2e TestBridgeStaticResourcesValidated that Istiod drops,
// between two valid documents.
const invalidDocs = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: good, namespace: static-check}
spec:
  host: static-ok.file
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad-host, namespace: static-check}
spec:
  hosts: ["bad_host!"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.21.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: no-host, namespace: static-check}
spec:
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fine, namespace: static-check}
spec:
  hosts: [static-ok.file]
  http: [{route: [{destination: {host: static-ok.file}}]}]
`

func TestLoadStaticErrors(t *testing.T) {
	const vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: b}\n"
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"not YAML", "kind: [", []string{"not valid YAML"}},
		{"unknown kind", "apiVersion: networking.istio.io/v1\nkind: VirtualServic\nmetadata: {name: a, namespace: b}\n", []string{"document at line 1", `kind "VirtualServic"`}},
		{"not Istio", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\n", []string{"not a kind the bridge serves from static files"}},
		{"kind without validator", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a, namespace: b}\nspec: {selector: {istio: ingressgateway}}\n",
			[]string{`kind "Gateway" is not a kind the bridge serves from static files; supported: DestinationRule, ServiceEntry, Sidecar, VirtualService, WorkloadEntry`}},
		{"security kind", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: b}\n", []string{`kind "AuthorizationPolicy" is not a kind`, "supported: DestinationRule"}},
		{"unknown version", "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a, namespace: b}\n", []string{`apiVersion "networking.istio.io/v2": VirtualService has versions v1, v1beta1, v1alpha3`}},
		{"no namespace", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n", []string{"metadata.name and metadata.namespace are required"}},
		{"unknown spec field", vs + "spec:\n  hostz: [x]\n", []string{"VirtualService b/a: spec", "hostz"}},
		{"invalid name", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: A_b, namespace: b}\nspec: {hosts: [a.file], http: [{route: [{destination: {host: a.file}}]}]}\n",
			[]string{`VirtualService b/A_b: metadata.name: "A_b" is not a DNS-1123 subdomain`}},
		{"reserved annotation", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a, namespace: b, annotations: {internal.istio.io/parents: x}}\nspec: {egress: [{hosts: [./*]}]}\n",
			[]string{`Sidecar b/a: metadata.annotations["internal.istio.io/parents"]: reserved for Istio`}},
		{"empty spec", vs, []string{"VirtualService b/a: http, tcp or tls must be provided in virtual service"}},
		{"invalid host", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad-host, namespace: b}\nspec:\n  hosts: [\"bad_host!\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n",
			[]string{"document at line 1: ServiceEntry b/bad-host: hosts[0]: host \"bad_host!\" has an invalid label"}},
		{"destination rule without host", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: no-host, namespace: b}\nspec: {subsets: [{name: v1}]}\n",
			[]string{"DestinationRule b/no-host: host: empty domain name not allowed"}},
		{"every problem of a document", vs + "spec:\n  hosts: [a.file]\n  http:\n  - route:\n    - {destination: {host: a.file, subset: v_1}, weight: 100}\n    - {destination: {host: \"\"}, weight: 0}\n    timeout: 0s\n",
			[]string{"VirtualService b/a: 4 problems:\n", "\n  - http[0].route[0].destination.subset: subset name is invalid", "\n  - http[0].route[1].destination.host: empty domain name not allowed",
				"\n  - http[0].route[1].weight: weight 0 in a split", "\n  - http[0].timeout: duration 0s must be at least 1ms"}},
		{"every bad document", invalidDocs, []string{"document at line 8: ServiceEntry static-check/bad-host: hosts[0]", "document at line 17: DestinationRule static-check/no-host: host: empty domain name"}},
		{"second document bad", staticGood + "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n", []string{"document at line 29", "namespace are required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeStatic(t, tt.doc)
			rs, err := LoadStatic([]string{path})
			if err == nil {
				t.Fatalf("accepted: %v", rs)
			}
			if !strings.HasPrefix(err.Error(), "static resources "+path+": ") {
				t.Errorf("error does not start with the file: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	t.Run("same resource in two files", func(t *testing.T) {
		_, err := LoadStatic([]string{writeStatic(t, staticGood), writeStatic(t, staticGood)})
		if err == nil || !strings.Contains(err.Error(), "is also defined in") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("every bad file", func(t *testing.T) {
		bad1, bad2 := writeStatic(t, "kind: ["), writeStatic(t, invalidDocs)
		_, err := LoadStatic([]string{bad1, writeStatic(t, staticGood), bad2})
		if err == nil {
			t.Fatal("accepted")
		}
		for _, w := range []string{bad1 + ": not valid YAML", bad2 + ": document at line 8", bad2 + ": document at line 17"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q:\n%v", w, err)
			}
		}
	})
}

func service(name string, addrs ...string) *registry.Service {
	s := &registry.Service{Registry: "shop", Kind: registry.KindApplication, Name: name,
		Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
	for _, a := range addrs {
		s.Instances = append(s.Instances, registry.Instance{ID: a, Address: a, Ports: map[string]uint32{"http": 8080}, Weight: 100, Healthy: true, Enabled: true})
	}
	return s
}

func newTestBridge(t *testing.T, static []*istio.Resource) (*Bridge, *prometheus.Registry) {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "shop", Hosts: translate.HostTemplates{Application: "{{.Name}}.file"}}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	b := New(Options{Translator: tr, Server: mcp.NewServer(mcp.Options{}), Static: static, Metrics: reg})
	return b, reg
}

func TestPushConvertsOnlyWhatChanged(t *testing.T) {
	static, err := LoadStatic([]string{writeStatic(t, staticGood)})
	if err != nil {
		t.Fatal(err)
	}
	b, reg := newTestBridge(t, static)
	orders, users := service("orders", "10.0.0.1"), service("users", "10.0.0.2")
	b.Push(&merge.Snapshot{Services: []*registry.Service{orders, users}, OldestEvent: time.Now().Add(-time.Second)})
	first := servedByName(b)
	if len(first) != 4 {
		t.Fatalf("converted %d resources, want 2 ServiceEntries + 2 static", len(first))
	}
	if got := testutil.ToFloat64(b.metrics.resources.WithLabelValues("ServiceEntry")); got != 2 {
		t.Errorf("ServiceEntry gauge %v, want 2", got)
	}
	if n := testutil.CollectAndCount(reg, "mcp_bridge_registry_event_to_push_seconds"); n != 1 {
		t.Errorf("lag histogram has %d series, want 1", n)
	}

	// users changes; orders keeps its pointer, so its MCP form is reused, not rebuilt.
	users2 := service("users", "10.0.0.2", "10.0.0.3")
	b.Push(&merge.Snapshot{Services: []*registry.Service{orders, users2}})
	for name, m := range servedByName(b) {
		switch name {
		case "users.file":
			if m == first[name] {
				t.Error("changed service's MCP resource was reused")
			}
		default:
			if m != first[name] {
				t.Errorf("unchanged %s was converted again", name)
			}
		}
	}

	// Every service gone: the ServiceEntry collection is pushed empty, static resources stay.
	b.Push(&merge.Snapshot{})
	if got := testutil.ToFloat64(b.metrics.resources.WithLabelValues("ServiceEntry")); got != 0 {
		t.Errorf("ServiceEntry gauge %v after all services left, want 0", got)
	}
	if got := testutil.ToFloat64(b.metrics.resources.WithLabelValues("VirtualService")); got != 1 {
		t.Errorf("VirtualService gauge %v, want 1 (static resources stay)", got)
	}
	if n := len(servedByName(b)); n != 2 {
		t.Errorf("%d conversions kept, want only the 2 static ones", n)
	}
}

// servedByName flattens what the bridge last served, by resource name.
func servedByName(b *Bridge) map[string]*mcp.Resource {
	m := make(map[string]*mcp.Resource)
	for _, c := range b.served {
		for i, r := range c.in {
			m[r.Name] = c.out[i]
		}
	}
	return m
}

// The MCP server is handed only the collections that changed, so an unchanged collection of
// 100,000 WorkloadEntries costs it nothing; one that became empty is handed over empty.
func TestConvertHandsOverOnlyChangedCollections(t *testing.T) {
	static, err := LoadStatic([]string{writeStatic(t, staticGood)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newTestBridge(t, static)
	orders := service("orders", "10.0.0.1")
	produce := func(services []*registry.Service) map[string][]*istio.Resource {
		snap := &merge.Snapshot{Services: services}
		prods := make([]*Production, len(b.producers))
		for i, p := range b.producers {
			prods[i] = p.Produce(snap)
		}
		return b.combine(prods).Resources
	}
	steps := []struct {
		name     string
		services []*registry.Service
		changed  []string // collection kinds handed to the server
		emptied  []string // of which handed over empty
	}{
		{"first push", []*registry.Service{orders}, []string{"DestinationRule", "ServiceEntry", "VirtualService", "WorkloadEntry"}, []string{"WorkloadEntry"}},
		{"same services", []*registry.Service{orders}, nil, nil},
		{"one service changed", []*registry.Service{service("orders", "10.0.0.1", "10.0.0.2")}, []string{"ServiceEntry"}, nil},
		{"every service gone", nil, []string{"ServiceEntry"}, []string{"ServiceEntry"}},
		{"still gone", nil, nil, nil},
	}
	for _, step := range steps {
		_, changed := b.convert(produce(step.services))
		var kinds, emptied []string
		for coll, rs := range changed {
			kinds = append(kinds, collectionKind(coll))
			if len(rs) == 0 {
				emptied = append(emptied, collectionKind(coll))
			}
		}
		slices.Sort(kinds)
		slices.Sort(emptied)
		if !slices.Equal(kinds, step.changed) || !slices.Equal(emptied, step.emptied) {
			t.Errorf("%s: changed %v (emptied %v), want %v (emptied %v)", step.name, kinds, emptied, step.changed, step.emptied)
		}
	}
}

func TestPushCountsInvalidByReason(t *testing.T) {
	b, _ := newTestBridge(t, nil)
	bad := service(strings.Repeat("x", 70), "10.0.0.9") // a host label over 63 characters
	b.Push(&merge.Snapshot{Services: []*registry.Service{bad, service("ok", "10.0.0.1")}})
	if got := testutil.ToFloat64(b.metrics.invalid.WithLabelValues("invalid-host")); got != 1 {
		t.Fatalf("invalid-host gauge %v, want 1", got)
	}
	b.Push(&merge.Snapshot{Services: []*registry.Service{service("ok", "10.0.0.1")}})
	if got := testutil.ToFloat64(b.metrics.invalid.WithLabelValues("invalid-host")); got != 0 {
		t.Errorf("invalid-host gauge %v after the bad service left, want 0", got)
	}
	if out := b.Output(); len(out.Invalid) != 0 {
		t.Errorf("Output().Invalid = %v", out.Invalid)
	}
}

// Warnings (a label rewritten, say) were neither counted nor logged; they are now, by reason, and
// each is logged once when it appears rather than on every push.
func TestPushCountsAndLogsWarningsByReason(t *testing.T) {
	var logs strings.Builder
	b, _ := newTestBridge(t, nil)
	b.log = slog.New(slog.NewTextHandler(&logs, nil))
	odd := service("odd", "10.0.0.1")
	// Keys translate's routing label mode keeps (env, zone), with a value and a key to rewrite.
	odd.Instances[0].Labels = map[string]string{"env": "Platform Team", "zone!": "x"}
	snap := &merge.Snapshot{Services: []*registry.Service{odd}}
	b.Push(snap)
	b.Push(snap)
	if got := testutil.ToFloat64(b.metrics.warnings.WithLabelValues("label-rewritten")); got != 2 {
		t.Fatalf("label-rewritten gauge %v, want 2 (one per rewritten key)", got)
	}
	if n := strings.Count(logs.String(), "reason=label-rewritten"); n != 2 {
		t.Errorf("%d label-rewritten log lines over two equal pushes, want 2 (each once):\n%s", n, logs.String())
	}
	b.Push(&merge.Snapshot{Services: []*registry.Service{service("ok", "10.0.0.2")}})
	if got := testutil.ToFloat64(b.metrics.warnings.WithLabelValues("label-rewritten")); got != 0 {
		t.Errorf("label-rewritten gauge %v after the service left, want 0", got)
	}
}

func TestRender(t *testing.T) {
	static, err := LoadStatic([]string{writeStatic(t, staticGood)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Render(&buf, static, RenderOptions{Format: "yaml", Kind: "virtualservice"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, w := range []string{"apiVersion: networking.istio.io/v1", "kind: VirtualService", "name: orders-split", "weight: 90"} {
		if !strings.Contains(out, w) {
			t.Errorf("render lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "DestinationRule") || strings.Contains(out, "resourceVersion") {
		t.Errorf("kind filter or versions option ignored:\n%s", out)
	}
	if err := Render(&buf, static, RenderOptions{Format: "xml"}); err == nil {
		t.Error("unknown format accepted")
	}
}
