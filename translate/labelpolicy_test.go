package translate

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// dubbo2ProviderURL is a provider URL as a Dubbo 2.7 / 3 provider registers it in ZooKeeper
// (interface-level discovery), with the parameters Dubbo adds by default.
const dubbo2ProviderURL = "dubbo://10.0.0.1:20880/com.example.OrderService?anyhost=true&application=orders&" +
	"deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&group=g1&interface=com.example.OrderService&" +
	"methods=create,get,list,update,delete,cancel,refund&pid=4242&release=3.2.10&revision=1.4.2&" +
	"service-name-mapping=true&side=provider&timeout=3000&retries=2&loadbalance=random&threads=200&" +
	"timestamp=1712345678901&version=1.0.0&dubbo.tag=gray&lane=l1&cell-id=c7"

// endpointLabels translates one service and returns its first endpoint's labels, without the
// bridge's own.
func endpointLabels(t *testing.T, tr *Translator, s *registry.Service) map[string]string {
	t.Helper()
	out := tr.Translate([]*registry.Service{s})
	ses := out.Resources["networking.istio.io/ServiceEntry"]
	if len(ses) != 1 {
		t.Fatalf("%d ServiceEntries (invalid: %v)", len(ses), out.Invalid)
	}
	eps := seSpec(t, ses[0]).GetEndpoints()
	if len(eps) == 0 {
		t.Fatal("no endpoint")
	}
	l := maps.Clone(eps[0].GetLabels())
	delete(l, LabelTLSMode)
	return l
}

func dubbo2Service(t *testing.T) *registry.Service {
	t.Helper()
	u, err := dubbo.ParseURL(dubbo2ProviderURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dubbo.NewProvider(u)
	if err != nil {
		t.Fatal(err)
	}
	return dubbo.InterfaceService(p.Key, []dubbo.Provider{p})
}

// TestLabelModes: which of a realistic Dubbo 2 provider's labels an endpoint carries in each mode,
// and that keep, drop and the keys rules reference do what the docs say.
func TestLabelModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels LabelOptions
		alias  []string // translate.dropLabels
		routed []string
		want   []string
	}{
		{"routing (default)", LabelOptions{}, nil, nil, []string{"app", "dubbo-tag", "lane"}},
		{"routing, keep", LabelOptions{Keep: []string{"cell-*", "side"}}, nil, nil, []string{"app", "cell-id", "dubbo-tag", "lane", "side"}},
		{"routing, drop wins over the allowlist", LabelOptions{Drop: []string{"lane"}}, nil, nil, []string{"app", "dubbo-tag"}},
		{"routing, a routed key is kept", LabelOptions{}, nil, []string{"cell-id"}, []string{"app", "cell-id", "dubbo-tag", "lane"}},
		{"routing, a routed key wins over drop", LabelOptions{Drop: []string{"cell-*", "lane"}}, nil, []string{"cell-id", "lane"}, []string{"app", "cell-id", "dubbo-tag", "lane"}},
		{"all", LabelOptions{Mode: LabelModeAll}, nil, nil, []string{"anyhost", "app", "cell-id", "deprecated", "dubbo", "dubbo-tag",
			"dynamic", "generic", "lane", "loadbalance", "release", "retries", "revision", "service-name-mapping", "side", "threads", "timeout"}},
		{"all, drop", LabelOptions{Mode: LabelModeAll, Drop: []string{"d*", "side", "t*", "r*", "s*", "l*", "g*"}}, nil, nil, []string{"anyhost", "app", "cell-id"}},
		{"all, dropLabels alias", LabelOptions{Mode: LabelModeAll}, []string{"d*", "side", "t*", "r*", "s*", "l*", "g*"}, nil, []string{"anyhost", "app", "cell-id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Registries: []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}, Labels: tc.labels, DropLabels: tc.alias}
			s := dubbo2Service(t)
			s.Registry = "zk"
			tr := mustNew(t, o)
			tr.SetRoutedLabels(tc.routed)
			got := slices.Sorted(maps.Keys(endpointLabels(t, tr, s)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("endpoint labels %v, want %v", got, tc.want)
			}
		})
	}
}

// withCells gives every other instance of each service a "cell-id" label, a key outside the
// routing allowlist, in a copy of the services.
func withCells(in []*registry.Service) []*registry.Service {
	out := make([]*registry.Service, len(in))
	for i, s := range in {
		c := s.Clone()
		for j := range c.Instances {
			if j%2 == 0 {
				c.Instances[j].Labels = maps.Clone(c.Instances[j].Labels)
				c.Instances[j].Labels["cell-id"] = "c" + strings.Repeat("x", j)
			}
		}
		out[i] = c
	}
	return out
}

// countLabel counts endpoints carrying key k in the ServiceEntries.
func countLabel(t *testing.T, out *Output, k string) int {
	n := 0
	for _, r := range out.Resources["networking.istio.io/ServiceEntry"] {
		for _, ep := range seSpec(t, r).GetEndpoints() {
			if _, ok := ep.GetLabels()[k]; ok {
				n++
			}
		}
	}
	return n
}

// TestRoutedLabelsFollowRules: a rule arriving after the services (a rule file reload, a
// governance rule) makes its label key appear on the endpoints already served, the same
// services (pointers) being translated again; the output is what a fresh translator with that
// rule from the start makes; services without the key keep their resources; a rule going away
// lets the key go again. Also that a routed key beats the drop list (timestamp).
func TestRoutedLabelsFollowRules(t *testing.T) {
	g := newGen(7)
	var services []*registry.Service
	seen := map[string]bool{}
	for range 60 {
		// One service per source, as merge delivers them (between two services with one source
		// the first in arrival order owns the host, and arrival order is not what this is about).
		if s := g.service(); !seen[sourceOf(s)] {
			seen[sourceOf(s)] = true
			services = append(services, s)
		}
	}
	services = withCells(services)
	o := Options{Registries: genRegistries}
	inc := mustNew(t, o)
	out0 := inc.Translate(services)
	if n := countLabel(t, out0, "cell-id"); n != 0 {
		t.Fatalf("routing mode, no rule: %d endpoints carry cell-id", n)
	}
	st := inc.LabelStats()
	if st.Mode != LabelModeRouting || st.DroppedKeys == 0 || !slices.ContainsFunc(st.Dropped, func(kc KeyCount) bool { return kc.Key == "cell-id" && kc.Count > 0 }) {
		t.Errorf("stats before the rule: %+v", st)
	}
	for step, routed := range [][]string{{"cell-id"}, {"timestamp"}, {"cell-id", "timestamp"}, nil} {
		before := versions(inc.Translate(services), "networking.istio.io/ServiceEntry")
		inc.SetRoutedLabels(routed)
		got := inc.Translate(services)
		fresh := mustNew(t, o)
		fresh.SetRoutedLabels(routed)
		want := fresh.Translate(services)
		checkOutput(t, got)
		if fingerprint(got) != fingerprint(want) {
			t.Fatalf("step %d (routed %v): output differs from a fresh translator's:\n%s", step, routed,
				golden.LineDiff(renderGolden(t, want), renderGolden(t, got)))
		}
		for _, k := range []string{"cell-id", "timestamp"} {
			n := countLabel(t, got, k)
			if slices.Contains(routed, k) != (n > 0) {
				t.Errorf("step %d (routed %v): %d endpoints carry %s", step, routed, n, k)
			}
		}
		// Only services whose endpoints gain or lose a label are rewritten.
		after := versions(got, "networking.istio.io/ServiceEntry")
		kept := 0
		for name, r := range after {
			if before[name] == r {
				kept++
			}
		}
		if kept == 0 {
			t.Errorf("step %d: every ServiceEntry was rewritten; those without instances cannot have changed", step)
		}
		if st := inc.LabelStats(); !slices.Equal(st.Routed, slices.Sorted(slices.Values(routed))) && len(routed) > 0 {
			t.Errorf("step %d: stats routed %v, want %v", step, st.Routed, routed)
		}
	}
	if fingerprint(inc.Translate(services)) != fingerprint(out0) {
		t.Error("with the rule gone, the output is not what it was before it")
	}
}

// TestLabelStatsBounded: however many distinct keys a registry sends, the stats (and the metric
// made of them) list at most MaxDroppedKeysShown plus the sum of the rest.
func TestLabelStatsBounded(t *testing.T) {
	s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "noisy",
		Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
	for i := range 50 {
		l := map[string]string{"version": "v1"}
		for k := range i + 1 {
			l["k"+strings.Repeat("x", k)] = "v"
		}
		s.Instances = append(s.Instances, registry.Instance{ID: string(rune('a'+i%26)) + strings.Repeat("z", i/26), Address: "10.0.0.1",
			Ports: map[string]uint32{"http": uint32(8000 + i)}, Weight: 1, Healthy: true, Enabled: true, Labels: l})
	}
	tr := mustNew(t, fileOptions())
	tr.Translate([]*registry.Service{s})
	st := tr.LabelStats()
	if st.DroppedKeys != 50 || len(st.Dropped) != MaxDroppedKeysShown+1 || st.Dropped[MaxDroppedKeysShown].Key != OtherKeys {
		t.Fatalf("stats: %d keys, %d shown, last %+v", st.DroppedKeys, len(st.Dropped), st.Dropped[len(st.Dropped)-1])
	}
	if st.Dropped[0] != (KeyCount{"k", 50}) {
		t.Errorf("largest first: %+v", st.Dropped[0])
	}
	sum := 0
	for _, kc := range st.Dropped {
		sum += kc.Count
	}
	if sum != 50*51/2 {
		t.Errorf("counts sum to %d, want %d", sum, 50*51/2)
	}
	tr.Translate(nil)
	if st := tr.LabelStats(); st.DroppedKeys != 0 || len(st.Dropped) != 0 {
		t.Errorf("after the service went: %+v", st)
	}
}

// FuzzLabelPolicy: whatever the keys, a key routing references is on the endpoint when the
// instance has it (as given, or sanitised to it), a key in the drop list never is unless routed,
// and in routing mode nothing outside the allowlist, keep and the routed keys is.
func FuzzLabelPolicy(f *testing.F) {
	f.Add("cell", "c1", "cell", "", false)
	f.Add("anyhost", "true", "", "any*", true)
	f.Add("timestamp", "1", "timestamp", "timestamp", false)
	f.Add("Bad Key!", "v", "Bad-Key", "", false)
	f.Add("zone", "z", "", "zone", false)
	f.Add("weird key", "v", "", "weird key", true) // dropped by its key as given, though emitted as weird-key
	f.Fuzz(func(t *testing.T, key, value, routed, drop string, all bool) {
		o := Options{Registries: []RegistryOptions{{Name: "file", Hosts: fileHosts}}}
		if all {
			o.Labels.Mode = LabelModeAll
		}
		if strings.TrimSuffix(drop, "*") != "" {
			o.Labels.Drop = []string{drop}
		}
		tr, err := New(o)
		if err != nil {
			t.Skip()
		}
		var rk []string
		if routed != "" {
			rk = []string{routed}
		}
		tr.SetRoutedLabels(rk)
		s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "svc",
			Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}},
			Instances: []registry.Instance{{ID: "a", Address: "10.0.0.1", Weight: 1, Healthy: true, Enabled: true,
				Labels: map[string]string{key: value}}}}
		out := tr.Translate([]*registry.Service{s})
		ses := out.Resources[istio.CollectionServiceEntry]
		if len(ses) != 1 {
			t.Fatalf("%d ServiceEntries", len(ses))
		}
		eps := seSpec(t, ses[0]).GetEndpoints()
		if len(eps) != 1 {
			t.Fatalf("%d endpoints", len(eps))
		}
		labels := eps[0].GetLabels()
		sk, ok := SanitizeLabelKey(key)
		_, has := labels[sk]
		reserved := reservedLabelKey(sk) || reservedLabelKey(key)
		switch {
		case !ok || reserved:
			// never emitted as the registry's: nothing to check
		case routed == key || routed == sk:
			if !has {
				t.Fatalf("routed key %q (%q) not on the endpoint: %v", key, sk, labels)
			}
		case has && (newKeySet([]string{drop}).match(key) || newKeySet([]string{drop}).match(sk)) && o.Labels.Drop != nil:
			t.Fatalf("dropped key %q on the endpoint: %v", key, labels)
		case has && !all && !newKeySet(DefaultRoutingLabels()).match(key) && !newKeySet(DefaultRoutingLabels()).match(sk):
			t.Fatalf("routing mode emitted %q, outside the allowlist: %v", key, labels)
		}
	})
}
