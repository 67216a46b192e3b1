package translate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/internal/golden"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// gen builds random but reproducible estates: services drawn from small name pools, so that hosts
// collide, aliases overlap interface services, and instances move between pushes.
type gen struct {
	r *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, 42))} }

var genRegistries = []RegistryOptions{
	{Name: "zk", Hosts: zookeeperHosts},
	{Name: "nacos", Hosts: nacosHosts},
	{Name: "eureka", Hosts: eurekaHosts},
}

func (g *gen) service() *registry.Service {
	s := &registry.Service{Registry: genRegistries[g.r.IntN(len(genRegistries))].Name}
	switch g.r.IntN(3) {
	case 0:
		s.Kind = registry.KindDubboInterface
		s.Name = fmt.Sprintf("com.example.Svc%d", g.r.IntN(40))
		if g.r.IntN(2) == 0 {
			s.Version = "1.0"
		}
		s.Ports = []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}
	case 1:
		s.Kind = registry.KindDubboApplication
		s.Name = fmt.Sprintf("app-%d", g.r.IntN(20))
		s.Ports = []registry.Port{{Name: "tri", Protocol: registry.ProtocolTriple}}
		if g.r.IntN(2) == 0 {
			s.Ports = append(s.Ports, registry.Port{Name: "dubbo", Protocol: registry.ProtocolDubbo})
		}
		for range g.r.IntN(3) {
			s.Aliases = append(s.Aliases, fmt.Sprintf("com.example.Svc%d", g.r.IntN(40)))
		}
	default:
		s.Kind = registry.KindApplication
		s.Name = fmt.Sprintf("web-%d", g.r.IntN(20))
		s.Group = []string{"", "DEFAULT_GROUP"}[g.r.IntN(2)]
		s.Ports = []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}
	}
	for i := range g.r.IntN(6) {
		s.Instances = append(s.Instances, g.instance(s, i))
	}
	return s
}

func (g *gen) instance(s *registry.Service, i int) registry.Instance {
	in := registry.Instance{
		ID:      fmt.Sprintf("i-%d-%d", i, g.r.IntN(1000)),
		Address: fmt.Sprintf("10.%d.%d.%d", g.r.IntN(4), g.r.IntN(256), g.r.IntN(256)),
		Ports:   map[string]uint32{},
		Labels:  map[string]string{"version": fmt.Sprintf("v%d", g.r.IntN(3)), "timestamp": fmt.Sprint(g.r.Int())},
		Weight:  uint32(g.r.IntN(3) * 50),
		Healthy: g.r.IntN(8) != 0,
		Enabled: true,
	}
	if g.r.IntN(10) == 0 {
		in.Address = fmt.Sprintf("host-%d.example.com", g.r.IntN(100))
	}
	for _, p := range s.Ports {
		in.Ports[p.Name] = uint32(8000 + g.r.IntN(3))
	}
	return in
}

// mutate returns the next push: some services kept (same pointer), some changed (new pointer), some
// removed, some added.
func (g *gen) mutate(in []*registry.Service) []*registry.Service {
	var out []*registry.Service
	for _, s := range in {
		switch g.r.IntN(10) {
		case 0: // removed
		case 1, 2:
			c := s.Clone()
			if len(c.Instances) > 0 && g.r.IntN(2) == 0 {
				k := g.r.IntN(len(c.Instances))
				c.Instances[k].Weight = uint32(g.r.IntN(3) * 50)
				c.Instances[k].Healthy = !c.Instances[k].Healthy
			} else {
				c.Instances = append(c.Instances, g.instance(c, len(c.Instances)))
			}
			out = append(out, c)
		default:
			out = append(out, s)
		}
	}
	for range g.r.IntN(8) {
		out = append(out, g.service())
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func mustNew(t testing.TB, o Options) *Translator {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// seSpec decodes a ServiceEntry resource's spec.
func seSpec(t testing.TB, r *istio.Resource) *networking.ServiceEntry {
	t.Helper()
	spec, err := r.DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	se, ok := spec.(*networking.ServiceEntry)
	if !ok {
		t.Fatalf("%s/%s: spec is %T", r.Namespace, r.Name, spec)
	}
	return se
}

// TestIncrementalMatchesRebuild drives a Translator through many random pushes and compares every
// output with that of a Translator that re-renders everything on every call (same VIP history).
// Any cache that misses a dependency between services (host ownership, aliases, VIPs, the
// WorkloadEntry cap) shows up as a difference.
func TestIncrementalMatchesRebuild(t *testing.T) {
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		t.Run(mode, func(t *testing.T) {
			o := Options{EndpointMode: mode, MaxWorkloadEntriesPerNamespace: 12, VIPCIDR: "240.1.0.0/26", Registries: genRegistries}
			for seed := range uint64(3) {
				inc, ref := mustNew(t, o), mustNew(t, o)
				ref.rebuildAll = true
				g := newGen(seed)
				var services []*registry.Service
				for range 30 {
					services = append(services, g.service())
				}
				for round := range 80 {
					got, want := inc.Translate(services), ref.Translate(services)
					checkOutput(t, got)
					if fingerprint(got) != fingerprint(want) {
						a, b := string(renderGolden(t, got)), string(renderGolden(t, want))
						t.Fatalf("seed %d round %d: incremental output differs from full rebuild:\n%s", seed, round, golden.LineDiff([]byte(b), []byte(a)))
					}
					services = g.mutate(services)
				}
			}
		})
	}
}

// fingerprint sums up an output cheaply: versions hash every byte that is sent.
func fingerprint(out *Output) string {
	var b strings.Builder
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
		for _, r := range out.Resources[coll] {
			fmt.Fprintf(&b, "%s %s/%s %s %s\n", coll, r.Namespace, r.Name, r.Version, r.Source)
		}
	}
	for _, i := range out.Invalid {
		fmt.Fprintf(&b, "invalid %+v\n", i)
	}
	for _, w := range out.Warnings {
		fmt.Fprintf(&b, "warning %+v\n", w)
	}
	for _, h := range out.Hosts {
		fmt.Fprintf(&b, "hosts %+v\n", h)
	}
	return b.String()
}

func TestSameInputSameOutput(t *testing.T) {
	services := loadServices(t, "testdata/services.yaml")
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		t.Run(mode, func(t *testing.T) {
			a := mustNew(t, goldenOptions(mode)).Translate(services)
			shuffled := slices.Clone(services)
			rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			b := mustNew(t, goldenOptions(mode)).Translate(shuffled)
			if x, y := string(renderGolden(t, a)), string(renderGolden(t, b)); x != y {
				t.Fatalf("shuffled input gives different output:\n%s", golden.LineDiff([]byte(x), []byte(y)))
			}
		})
	}
}

// versions maps namespace/name to version for one collection.
func versions(out *Output, coll string) map[string]*istio.Resource {
	m := map[string]*istio.Resource{}
	for _, r := range out.Resources[coll] {
		m[r.Namespace+"/"+r.Name] = r
	}
	return m
}

// TestOneInstanceChanged: only the resources that carry the changed instance get a new version,
// and every other resource is the very same *Resource as before.
func TestOneInstanceChanged(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		wantSE    []string
		wantWE    []string
		editIndex int
	}{
		{EndpointModeInline, []string{"zk/org.apache.dubbo.demo.demoservice-1-0-0"}, nil, 0},
		{EndpointModeWorkloadEntry, nil, []string{"zk/org.apache.dubbo.demo.demoservice-1-0-0.10-0-0-1-20880"}, 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			services := loadServices(t, "testdata/services.yaml")
			tr := mustNew(t, goldenOptions(tc.mode))
			before := tr.Translate(services)
			beforeSE, beforeWE := versions(before, istio.CollectionServiceEntry), versions(before, istio.CollectionWorkloadEntry)

			// The DemoService interface is services[0]; change its first instance's weight.
			changed := slices.Clone(services)
			c := changed[0].Clone()
			c.Instances[0].Weight = 7
			changed[0] = c
			after := tr.Translate(changed)
			checkOutput(t, after)

			for _, x := range []struct {
				coll   string
				before map[string]*istio.Resource
				want   []string
			}{{istio.CollectionServiceEntry, beforeSE, tc.wantSE}, {istio.CollectionWorkloadEntry, beforeWE, tc.wantWE}} {
				now := versions(after, x.coll)
				if len(now) != len(x.before) {
					t.Errorf("%s: %d resources, before %d", x.coll, len(now), len(x.before))
				}
				var diff []string
				for k, r := range now {
					old := x.before[k]
					if old == nil || old.Version != r.Version {
						diff = append(diff, k)
					} else if old != r {
						t.Errorf("%s %s: same version but a new *istio.Resource", x.coll, k)
					}
				}
				slices.Sort(diff)
				if !slices.Equal(diff, x.want) {
					t.Errorf("%s: versions changed for %v, want %v", x.coll, diff, x.want)
				}
			}
			// And back: the original content gives the original versions.
			again := tr.Translate(services)
			for k, r := range versions(again, istio.CollectionServiceEntry) {
				if beforeSE[k].Version != r.Version {
					t.Errorf("%s: version %s after reverting, was %s", k, r.Version, beforeSE[k].Version)
				}
			}
		})
	}
}

func TestUnchangedInputReturnsSameOutput(t *testing.T) {
	services := loadServices(t, "testdata/services.yaml")
	tr := mustNew(t, goldenOptions(EndpointModeInline))
	a := tr.Translate(services)
	if b := tr.Translate(slices.Clone(services)); a != b {
		t.Error("a push with the same pointers built a new output")
	}
}

// dubboServices makes n Dubbo interface services, which all need VIPs.
func dubboServices(n int) []*registry.Service {
	out := make([]*registry.Service, n)
	for i := range out {
		out[i] = &registry.Service{Registry: "zk", Kind: registry.KindDubboInterface, Name: fmt.Sprintf("com.example.S%d", i),
			Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}}
	}
	return out
}

func vipsOf(t testing.TB, out *Output) map[string]string {
	t.Helper()
	m := map[string]string{}
	used := map[string]string{}
	for _, r := range out.Resources[istio.CollectionServiceEntry] {
		se := seSpec(t, r)
		if len(se.Addresses) != 1 {
			t.Fatalf("%s: addresses %v", r.Name, se.Addresses)
		}
		v := se.Addresses[0]
		if other, dup := used[v]; dup {
			t.Fatalf("VIP %s given to %s and %s", v, other, r.Name)
		}
		used[v] = r.Name
		m[se.Hosts[0]] = v
	}
	return m
}

func TestVIPDeterminism(t *testing.T) {
	// 2000 hosts in 4094 addresses: plenty of hash collisions to resolve.
	o := Options{VIPCIDR: "240.2.0.0/20", Registries: []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}}
	services := dubboServices(2000)
	var runs []map[string]string
	for seed := range uint64(3) {
		in := slices.Clone(services)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		runs = append(runs, vipsOf(t, mustNew(t, o).Translate(in)))
	}
	prefix := netip.MustParsePrefix(o.VIPCIDR)
	moved := 0
	r, _ := parseVIPRange(o.VIPCIDR)
	for h, v := range runs[0] {
		for i, run := range runs[1:] {
			if run[h] != v {
				t.Errorf("run %d: %s got %s, run 0 gave %s", i+1, h, run[h], v)
			}
		}
		a := netip.MustParseAddr(v)
		if !prefix.Contains(a) || a == prefix.Addr() || a == netip.MustParseAddr("240.2.15.255") {
			t.Errorf("%s: VIP %s outside the usable part of %s", h, v, prefix)
		}
		alloc := newVIPAllocator(r)
		alloc.allocate([]string{h})
		if home, _ := alloc.get(h); home != v {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no collisions happened; the test does not exercise probing")
	}
	t.Logf("%d of %d hosts probed past a collision", moved, len(runs[0]))
}

// TestVIPNeverMoves: a host keeps its VIP while present, whatever arrives later; and a removed
// host's VIP is freed.
func TestVIPNeverMoves(t *testing.T) {
	// 14 usable addresses for 12 hosts: newcomers collide with the first ones often.
	o := Options{VIPCIDR: "240.3.0.0/28", Registries: []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}}
	all := dubboServices(12)
	tr := mustNew(t, o)
	first := vipsOf(t, tr.Translate(all[:6]))
	second := vipsOf(t, tr.Translate(all))
	for h, v := range first {
		if second[h] != v {
			t.Errorf("%s moved from %s to %s when others arrived", h, v, second[h])
		}
	}
	// All 14 addresses: two more services fit, the third gets none and a warning.
	more := append(slices.Clone(all), dubboServices(15)[12:]...)
	out := tr.Translate(more)
	full := 0
	for _, w := range out.Warnings {
		if w.Reason == reasonVIPExhausted {
			full++
		}
	}
	if full != 1 {
		t.Errorf("%d vip-exhausted warnings, want 1", full)
	}
	// Removing a service frees its VIP for the one left without.
	out = tr.Translate(append(slices.Clone(all[1:]), more[12:]...))
	for _, w := range out.Warnings {
		if w.Reason == reasonVIPExhausted {
			t.Errorf("still exhausted after a service left: %v", w)
		}
	}
	vipsOf(t, out)
}

func TestWorkloadEntryCap(t *testing.T) {
	svc := func(name string, n int) *registry.Service {
		s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: name,
			Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
		for i := range n {
			s.Instances = append(s.Instances, registry.Instance{ID: fmt.Sprint(i), Address: fmt.Sprintf("10.0.0.%d", i+1),
				Ports: map[string]uint32{"http": 80}, Weight: 1, Healthy: true, Enabled: true})
		}
		return s
	}
	a, b, c := svc("a", 2), svc("b", 2), svc("c", 1)
	tr := mustNew(t, Options{EndpointMode: EndpointModeWorkloadEntry, MaxWorkloadEntriesPerNamespace: 3,
		Registries: []RegistryOptions{{Name: "file", Hosts: fileHosts}}})
	mode := func(out *Output) string {
		var parts []string
		for _, r := range out.Resources[istio.CollectionServiceEntry] {
			se := seSpec(t, r)
			m := "inline"
			if se.WorkloadSelector != nil {
				m = "we"
			}
			parts = append(parts, fmt.Sprintf("%s=%s", strings.TrimSuffix(r.Name, ".file"), m))
		}
		return strings.Join(parts, " ") + fmt.Sprintf(" wes=%d", len(out.Resources[istio.CollectionWorkloadEntry]))
	}
	steps := []struct {
		in   []*registry.Service
		want string
	}{
		// a (2) fits, b (2) would make 4 > 3, c (1) still fits after a.
		{[]*registry.Service{c, b, a}, "a=we b=inline c=we wes=3"},
		// a leaves: b fits now.
		{[]*registry.Service{c, b}, "b=we c=we wes=3"},
		// a is back: the choice depends on the services, not on history.
		{[]*registry.Service{a, b, c}, "a=we b=inline c=we wes=3"},
	}
	for i, s := range steps {
		out := tr.Translate(s.in)
		checkOutput(t, out)
		if got := mode(out); got != s.want {
			t.Errorf("step %d: %s, want %s", i, got, s.want)
		}
	}
	// No limit: everything is a WorkloadEntry.
	unlimited := mustNew(t, Options{EndpointMode: EndpointModeWorkloadEntry, MaxWorkloadEntriesPerNamespace: -1,
		Registries: []RegistryOptions{{Name: "file", Hosts: fileHosts}}})
	if got := mode(unlimited.Translate([]*registry.Service{a, b, c})); got != "a=we b=we c=we wes=5" {
		t.Errorf("no cap: %s", got)
	}
}

// TestAliases covers who gets an alias host when several services want it.
func TestAliases(t *testing.T) {
	iface := &registry.Service{Registry: "zk", Kind: registry.KindDubboInterface, Name: "com.example.Foo",
		Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}}
	app := func(name string, ports ...registry.Port) *registry.Service {
		return &registry.Service{Registry: "zk", Kind: registry.KindDubboApplication, Name: name, Ports: ports,
			Aliases: []string{"com.example.Foo", "com.example.Bar"}}
	}
	tri := registry.Port{Name: "tri", Protocol: registry.ProtocolTriple}
	dubbo := registry.Port{Name: "dubbo", Protocol: registry.ProtocolDubbo}
	hostsOf := func(out *Output) string {
		var parts []string
		for _, r := range out.Resources[istio.CollectionServiceEntry] {
			parts = append(parts, r.Name+"="+strings.Join(seSpec(t, r).Hosts, ","))
		}
		return strings.Join(parts, " ")
	}
	tr := mustNew(t, Options{Registries: []RegistryOptions{{Name: "zk", Hosts: zookeeperHosts}}})
	for i, s := range []struct {
		in   []*registry.Service
		want string
	}{
		// gRPC only: aliases are extra hosts of the app's ServiceEntry.
		{[]*registry.Service{app("b-app", tri)}, "b-app.zookeeper=b-app.zookeeper,com.example.bar,com.example.foo"},
		// The real interface service takes com.example.foo from the app.
		{[]*registry.Service{app("b-app", tri), iface}, "b-app.zookeeper=b-app.zookeeper,com.example.bar com.example.foo=com.example.foo"},
		// A second app wanting the same aliases: the first by source keeps them.
		{[]*registry.Service{app("b-app", tri), app("a-app", tri)}, "a-app.zookeeper=a-app.zookeeper,com.example.bar,com.example.foo b-app.zookeeper=b-app.zookeeper"},
		// A TCP port: each alias gets a ServiceEntry of its own, since Istio refuses several hosts.
		{[]*registry.Service{app("b-app", dubbo, tri)}, "b-app.zookeeper=b-app.zookeeper com.example.bar=com.example.bar com.example.foo=com.example.foo"},
	} {
		out := tr.Translate(s.in)
		checkOutput(t, out)
		if got := hostsOf(out); got != s.want {
			t.Errorf("step %d:\n got %s\nwant %s", i, got, s.want)
		}
	}
}

func TestHost(t *testing.T) {
	tr := mustNew(t, Options{Registries: []RegistryOptions{
		{Name: "nacos", Hosts: nacosHosts}, {Name: "zk", Hosts: zookeeperHosts},
		{Name: "consul", Hosts: consulHosts}, {Name: "eureka", Hosts: eurekaHosts}, {Name: "files", Hosts: fileHosts},
		{Name: "custom", Hosts: HostTemplates{Application: "{{.Name}}.{{.Registry}}.svc", DubboApplication: nacosHosts.DubboApplication}},
	}})
	preserve := mustNew(t, Options{PreserveHostCase: true, Registries: []RegistryOptions{{Name: "nacos", Hosts: nacosHosts}}})
	for _, tc := range []struct {
		tr   *Translator
		s    registry.Service
		want string
	}{
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindApplication, Name: "order", Group: "DEFAULT_GROUP"}, "order.default-group.public.nacos"},
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindApplication, Name: "order"}, "order.default-group.public.nacos"},
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindApplication, Name: "order", Group: "G_1", Namespace: "ns_x"}, "order.g-1.ns-x.nacos"},
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindDubboApplication, Name: "app", Group: "DEFAULT_GROUP"}, "app.default-group.public.nacos"},
		// A Dubbo interface gets the same host from every registry.
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindDubboInterface, Name: "org.Foo", Group: "g", Version: "1.2.3"}, "org.foo-g-1-2-3"},
		{tr, registry.Service{Registry: "zk", Kind: registry.KindDubboInterface, Name: "org.Foo", Group: "g", Version: "1.2.3"}, "org.foo-g-1-2-3"},
		{tr, registry.Service{Registry: "zk", Kind: registry.KindDubboInterface, Name: "org.Foo", Version: "1.2.3"}, "org.foo-1-2-3"},
		{tr, registry.Service{Registry: "zk", Kind: registry.KindDubboInterface, Name: "org.Foo$Inner"}, "org.foo-inner"},
		{tr, registry.Service{Registry: "zk", Kind: registry.KindApplication, Name: "spring-app"}, "spring-app.zookeeper"},
		{tr, registry.Service{Registry: "zk", Kind: registry.KindDubboApplication, Name: "demo"}, "demo.zookeeper"},
		{tr, registry.Service{Registry: "consul", Kind: registry.KindApplication, Name: "web", Namespace: "dc1"}, "web.dc1.consul"},
		{tr, registry.Service{Registry: "consul", Kind: registry.KindApplication, Name: "web"}, "web.consul"},
		{tr, registry.Service{Registry: "eureka", Kind: registry.KindApplication, Name: "ORDER-SERVICE"}, "order-service.eureka"},
		{tr, registry.Service{Registry: "files", Kind: registry.KindApplication, Name: "legacy"}, "legacy.file"},
		{tr, registry.Service{Registry: "custom", Kind: registry.KindApplication, Name: "x"}, "x.custom.svc"},
		{tr, registry.Service{Registry: "nacos", Kind: registry.KindApplication, Name: "支付"}, "xn--bnq875c.default-group.public.nacos"},
		// Unconfigured registry: generic defaults, so merge still has a distinct identity.
		{tr, registry.Service{Registry: "other", Kind: registry.KindApplication, Name: "x"}, "x.other"},
		// Invalid: an empty label.
		{tr, registry.Service{Registry: "zk", Kind: registry.KindApplication, Name: "a..b"}, "zk/application:a..b"},
		{preserve, registry.Service{Registry: "nacos", Kind: registry.KindApplication, Name: "Order", Group: "DEFAULT_GROUP"}, "Order.DEFAULT-GROUP.public.nacos"},
	} {
		if got := tc.tr.Host(&tc.s); got != tc.want {
			t.Errorf("Host(%s %s): %q, want %q", tc.s.Registry, tc.s.Key(), got, tc.want)
		}
	}
}

// TestHostConcurrent runs Host beside Translate; go test -race shows any shared state.
func TestHostConcurrent(t *testing.T) {
	services := loadServices(t, "testdata/services.yaml")
	tr := mustNew(t, goldenOptions(EndpointModeInline))
	done := make(chan struct{})
	hostsOf := slices.Clone(services)
	go func() {
		defer close(done)
		for range 20 {
			for _, s := range hostsOf {
				tr.Host(s)
			}
		}
	}()
	for range 20 {
		tr.Translate(slices.Clone(services))
		services[0] = services[0].Clone()
	}
	<-done
}

func TestPreserveHostCaseNames(t *testing.T) {
	tr := mustNew(t, Options{PreserveHostCase: true, Registries: []RegistryOptions{{Name: "nacos", Hosts: nacosHosts}}})
	out := tr.Translate([]*registry.Service{{Registry: "nacos", Kind: registry.KindApplication, Name: "Order", Group: "DEFAULT_GROUP",
		Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}})
	checkOutput(t, out)
	r := out.Resources[istio.CollectionServiceEntry][0]
	if r.Name != "order.default-group.public.nacos" || seSpec(t, r).Hosts[0] != "Order.DEFAULT-GROUP.public.nacos" {
		t.Errorf("name %q hosts %v", r.Name, seSpec(t, r).Hosts)
	}
}

func TestEndpointFilters(t *testing.T) {
	s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "f",
		Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}},
		Instances: []registry.Instance{
			{ID: "ok", Address: "10.0.0.1", Weight: 1, Healthy: true, Enabled: true},
			{ID: "sick", Address: "10.0.0.2", Weight: 1, Healthy: false, Enabled: true},
			{ID: "off", Address: "10.0.0.3", Weight: 1, Healthy: true, Enabled: false},
			{ID: "zero", Address: "10.0.0.4", Weight: 0, Healthy: true, Enabled: true},
		}}
	regs := []RegistryOptions{{Name: "file", Hosts: fileHosts}}
	for _, tc := range []struct {
		o    Options
		want []string
	}{
		{Options{Registries: regs}, []string{"10.0.0.1"}},
		{Options{Registries: regs, IncludeUnhealthy: true}, []string{"10.0.0.1", "10.0.0.2"}},
		{Options{Registries: regs, IncludeDisabled: true}, []string{"10.0.0.1", "10.0.0.3"}},
		{Options{Registries: regs, IncludeZeroWeight: true}, []string{"10.0.0.1", "10.0.0.4"}},
	} {
		out := mustNew(t, tc.o).Translate([]*registry.Service{s})
		var got []string
		for _, ep := range seSpec(t, out.Resources[istio.CollectionServiceEntry][0]).Endpoints {
			got = append(got, ep.Address)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: endpoints %v, want %v", tc.o, got, tc.want)
		}
	}
}

func TestTLSModeLabel(t *testing.T) {
	s := &registry.Service{Registry: "file", Kind: registry.KindApplication, Name: "f",
		Ports:     []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}},
		Instances: []registry.Instance{{ID: "a", Address: "10.0.0.1", Weight: 1, Healthy: true, Enabled: true}}}
	for mode, want := range map[string]string{"": "disabled", TLSModeIstio: "istio", TLSModeNone: ""} {
		out := mustNew(t, Options{WorkloadTLSMode: mode, Registries: []RegistryOptions{{Name: "file", Hosts: fileHosts}}}).Translate([]*registry.Service{s})
		ep := seSpec(t, out.Resources[istio.CollectionServiceEntry][0]).Endpoints[0]
		if got := ep.Labels[LabelTLSMode]; got != want {
			t.Errorf("workloadTLSMode %q: label %q, want %q", mode, got, want)
		}
		if ep.ServiceAccount != "" {
			t.Errorf("serviceAccount set: %q", ep.ServiceAccount)
		}
	}
}
