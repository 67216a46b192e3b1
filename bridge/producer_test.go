package bridge

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// TestProducerConflict: when two producers emit the same collection/namespace/name, the one
// earlier in the list is served, whichever it is; the loser is listed in Invalid (reason
// producer-conflict, naming both producers) and in Conflicts, counted in the invalid metric, and
// logged once while the conflict lasts. The rest of the collection is served from both.
func TestProducerConflict(t *testing.T) {
	for _, tc := range []struct {
		name         string
		staticFirst  bool
		winner       string
		winnerSource string
	}{
		{"translate first wins", false, "translate", "shop/application:orders"},
		{"static first wins", true, "static", "static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "shop", Hosts: translate.HostTemplates{Application: "{{.Name}}.file"}}}})
			if err != nil {
				t.Fatal(err)
			}
			orders, users := service("orders", "10.0.0.1"), service("users", "10.0.0.2")
			// A static ServiceEntry named as the one translate makes for orders, and one of its own.
			probe := mustTranslate(t, orders)
			clash := staticServiceEntry(t, probe.Namespace, probe.Name)
			own := staticServiceEntry(t, probe.Namespace, "zz-static.example")
			producers := []Producer{Translate(tr), Static([]*istio.Resource{clash, own})}
			if tc.staticFirst {
				producers[0], producers[1] = producers[1], producers[0]
			}
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			b := New(Options{Producers: producers, Server: mcp.NewServer(mcp.Options{}), Metrics: reg,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			snap := &merge.Snapshot{Services: []*registry.Service{orders, users}}
			b.Push(snap)
			b.Push(snap)
			out := b.Output()

			ses := out.Resources[istio.CollectionServiceEntry]
			if len(ses) != 3 {
				t.Fatalf("served %d ServiceEntries, want 3 (orders once, users, the static one)", len(ses))
			}
			for i := 1; i < len(ses); i++ {
				if ses[i-1].Namespace+"/"+ses[i-1].Name >= ses[i].Namespace+"/"+ses[i].Name {
					t.Errorf("not sorted by namespace/name: %s before %s", ses[i-1].Name, ses[i].Name)
				}
			}
			for _, r := range ses {
				if r.Name == probe.Name && r.Source != tc.winnerSource {
					t.Errorf("served %s from %q, want %q", r.Name, r.Source, tc.winnerSource)
				}
			}
			if len(out.Conflicts) != 1 || out.Conflicts[0].Winner != tc.winner || out.Conflicts[0].Name != probe.Name {
				t.Fatalf("Conflicts = %+v, want one won by %s", out.Conflicts, tc.winner)
			}
			var inv []istio.Invalid
			for _, i := range out.Invalid {
				if i.Reason == ReasonProducerConflict {
					inv = append(inv, i)
				}
			}
			if len(inv) != 1 || !strings.Contains(inv[0].Detail, "translate") || !strings.Contains(inv[0].Detail, "static") {
				t.Errorf("Invalid conflicts = %+v, want one naming both producers", inv)
			}
			if got := testutil.ToFloat64(b.metrics.invalid.WithLabelValues(ReasonProducerConflict)); got != 1 {
				t.Errorf("invalid{reason=producer-conflict} = %v, want 1", got)
			}
			if n := strings.Count(logs.String(), "another producer emits the same name"); n != 1 {
				t.Errorf("conflict logged %d times over two pushes, want once:\n%s", n, logs.String())
			}

			// The conflict ends when orders goes: nothing more is reported, the static one is served.
			b.Push(&merge.Snapshot{Services: []*registry.Service{users}})
			if out := b.Output(); len(out.Conflicts) != 0 || len(out.Resources[istio.CollectionServiceEntry]) != 3 {
				t.Errorf("after orders left: conflicts %v, %d ServiceEntries, want none and 3", out.Conflicts, len(out.Resources[istio.CollectionServiceEntry]))
			}
		})
	}
}

// TestMergeCollectionIdentity: a collection several producers emit is combined again only when
// one of their slices changed, and a collection one producer emits is that producer's slice, so
// an unchanged push stays a pointer comparison.
func TestMergeCollectionIdentity(t *testing.T) {
	a := staticServiceEntry(t, "ns", "a.example")
	b := staticServiceEntry(t, "ns", "b.example")
	c := staticServiceEntry(t, "ns", "c.example")
	first, second := []*istio.Resource{a, c}, []*istio.Resource{b}
	names := []string{"one", "two"}

	only := mergeCollection("x", names, [][]*istio.Resource{first, nil}, nil)
	if !sameSlice(only.out, first) {
		t.Error("a collection of one producer was copied")
	}
	m := mergeCollection("x", names, [][]*istio.Resource{first, second}, nil)
	if len(m.out) != 3 || m.out[0] != a || m.out[1] != b || m.out[2] != c {
		t.Fatalf("merged %v, want a b c", m.out)
	}
	if again := mergeCollection("x", names, [][]*istio.Resource{first, second}, m); again != m {
		t.Error("unchanged inputs were merged again")
	}
	changed := []*istio.Resource{b, staticServiceEntry(t, "ns", "d.example")}
	if again := mergeCollection("x", names, [][]*istio.Resource{first, changed}, m); again == m || len(again.out) != 4 || again.out[0] != a {
		t.Errorf("changed input: got %v", again.out)
	}
}

func mustTranslate(t *testing.T, s *registry.Service) *istio.Resource {
	t.Helper()
	tr, err := translate.New(translate.Options{Registries: []translate.RegistryOptions{{Name: "shop", Hosts: translate.HostTemplates{Application: "{{.Name}}.file"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ses := tr.Translate([]*registry.Service{s}).Resources[istio.CollectionServiceEntry]
	if len(ses) != 1 {
		t.Fatalf("translated %d ServiceEntries", len(ses))
	}
	return ses[0]
}

func staticServiceEntry(t *testing.T, ns, name string) *istio.Resource {
	t.Helper()
	r, err := istio.NewResource(istio.CollectionServiceEntry, ns, name, nil, nil, &networking.ServiceEntry{
		Hosts: []string{name}, Location: networking.ServiceEntry_MESH_INTERNAL, Resolution: networking.ServiceEntry_STATIC,
		Ports: []*networking.ServicePort{{Name: "http", Number: 80, Protocol: "HTTP"}}})
	if err != nil {
		t.Fatal(err)
	}
	r.Source = "static"
	return r
}
