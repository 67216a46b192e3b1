package merge

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// dubbo builds the same Dubbo 3 application as two registries might report it during a
// migration: a dubbo port everywhere, a tri port (with a given protocol) where proto is set.
func dubbo(triProto registry.Protocol, labels map[string]string, addrs ...string) *registry.Service {
	s := &registry.Service{Kind: registry.KindDubboApplication, Name: "shop-order", Labels: labels,
		Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}}
	if triProto != "" {
		s.Ports = append(s.Ports, registry.Port{Name: "tri", Protocol: triProto})
	}
	for _, a := range addrs {
		ports := map[string]uint32{"dubbo": 20880}
		if triProto != "" {
			ports["tri"] = 50051
		}
		s.Instances = append(s.Instances, registry.Instance{ID: a, Address: a, Ports: ports, Weight: 100, Healthy: true, Enabled: true})
	}
	return s
}

func TestDuplicateMerge(t *testing.T) {
	h := newHarness(t, Options{}, "zk", "nacos")
	zk, nacos := h.sink("zk"), h.sink("nacos")
	zkSvc := dubbo("", map[string]string{"owner": "zk-team"}, "10.0.0.1", "10.0.0.2")
	zk.Replace([]*registry.Service{zkSvc})
	// 10.0.0.2 is registered in both (dual registration); nacos also declares a tri port, and
	// names a port the same as zk with another protocol.
	nacosSvc := dubbo(registry.ProtocolTriple, map[string]string{"owner": "nacos-team", "tier": "gold"}, "10.0.0.2", "10.0.0.3")
	nacosSvc.Ports[0].Protocol = registry.ProtocolTCP
	for i := range nacosSvc.Instances {
		delete(nacosSvc.Instances[i].Ports, "tri") // same port numbers as zk's, so 10.0.0.2 is the same endpoint
	}
	nacos.Replace([]*registry.Service{nacosSvc})
	snap := h.mustFlush()

	if len(snap.Services) != 1 {
		t.Fatalf("got %s; want one merged service", describe(snap))
	}
	got := snap.Services[0]
	if got.Registry != "zk" {
		t.Errorf("Registry %q, want the first registry in configuration order", got.Registry)
	}
	wantPorts := []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}, {Name: "tri", Protocol: registry.ProtocolTriple}}
	if !equalPorts(got.Ports, wantPorts) {
		t.Errorf("ports %v, want union by name with zk's protocol kept: %v", got.Ports, wantPorts)
	}
	if got.Labels["owner"] != "zk-team" || got.Labels["tier"] != "gold" {
		t.Errorf("labels %v: want the union, the first registry winning", got.Labels)
	}
	wantInstances := map[string]string{"10.0.0.1": "zk", "10.0.0.2": "zk", "10.0.0.3": "nacos"}
	if len(got.Instances) != len(wantInstances) {
		t.Fatalf("instances %+v; want the shared endpoint once", got.Instances)
	}
	for _, in := range got.Instances {
		if reg := in.Labels[RegistryLabel]; reg != wantInstances[in.Address] {
			t.Errorf("instance %s labelled %q, want %q", in.Address, reg, wantInstances[in.Address])
		}
	}
	// The members themselves are untouched: they may be served again alone.
	if _, ok := zkSvc.Instances[0].Labels[RegistryLabel]; ok {
		t.Error("merging modified a registry's own service")
	}

	for _, name := range []string{"zk", "nacos"} {
		d := h.status(name).Duplicates
		if len(d) != 1 {
			t.Fatalf("%s: duplicates %+v", name, d)
		}
		if d[0].Rule != DuplicateMerge || d[0].SharedEndpoints != 1 || len(d[0].Members) != 2 ||
			d[0].Members[0].Registry != "zk" || d[0].Members[1].Registry != "nacos" {
			t.Errorf("%s: duplicate %+v", name, d[0])
		}
		if len(d[0].PortConflicts) != 1 || d[0].PortConflicts[0] != (PortConflict{Port: "dubbo", Kept: "dubbo", KeptFrom: "zk", Ignored: "tcp", IgnoredFrom: "nacos"}) {
			t.Errorf("%s: port conflicts %+v", name, d[0].PortConflicts)
		}
	}
	if v := testutil.ToFloat64(h.m.met.duplicates); v != 1 {
		t.Errorf("duplicate metric %v, want 1", v)
	}

	// nacos stops reporting it: zk's own service is served again, as it is.
	nacos.Delete([]registry.Key{nacosSvc.Key()})
	snap = h.mustFlush()
	if len(snap.Services) != 1 || snap.Services[0] != zkSvc {
		t.Errorf("after the duplicate went away: %s; want zk's own service pointer", describe(snap))
	}
	if d := h.status("zk").Duplicates; len(d) != 0 {
		t.Errorf("duplicates still listed: %+v", d)
	}
	if v := testutil.ToFloat64(h.m.met.duplicates); v != 0 {
		t.Errorf("duplicate metric %v, want 0", v)
	}
}

func TestDuplicateMergeUniqueInstanceIDs(t *testing.T) {
	h := newHarness(t, Options{}, "a", "b")
	x, y := svc("orders", "10.0.0.1"), svc("orders", "10.0.0.2")
	y.Instances[0].ID = x.Instances[0].ID // different endpoints, same ID
	h.sink("a").Replace([]*registry.Service{x})
	h.sink("b").Replace([]*registry.Service{y})
	got := h.mustFlush().Services[0]
	if len(got.Instances) != 2 || got.Instances[0].ID == got.Instances[1].ID {
		t.Fatalf("instances %+v; want two with distinct IDs", got.Instances)
	}
	if id := got.Instances[1].ID; id != "10.0.0.1:8080@b" {
		t.Errorf("renamed ID %q", id)
	}
}

func TestDuplicatePrefer(t *testing.T) {
	h := newHarness(t, Options{Duplicates: Duplicates{Mode: DuplicatePrefer, Prefer: []string{"nacos"}}}, "zk", "nacos", "eureka")
	zkSvc, nacosSvc, eurekaSvc := svc("Orders", "10.0.0.1"), svc("orders", "10.0.0.2"), svc("ORDERS", "10.0.0.3")
	h.sink("zk").Replace([]*registry.Service{zkSvc})
	h.sink("nacos").Replace([]*registry.Service{nacosSvc})
	h.sink("eureka").Replace([]*registry.Service{eurekaSvc})
	snap := h.mustFlush()
	if len(snap.Services) != 1 || snap.Services[0] != nacosSvc {
		t.Fatalf("got %s; want nacos's service as it is", describe(snap))
	}
	d := h.status("eureka").Duplicates
	if len(d) != 1 || d[0].Rule != DuplicatePrefer {
		t.Fatalf("duplicates %+v", d)
	}
	order := []string{"nacos", "zk", "eureka"} // listed first, then configuration order
	for i, mb := range d[0].Members {
		if mb.Registry != order[i] || mb.Shadowed != (i > 0) {
			t.Errorf("member %d = %+v; want %s, shadowed=%v", i, mb, order[i], i > 0)
		}
	}

	// The preferred registry deregisters it: the next in priority takes over.
	h.sink("nacos").Delete([]registry.Key{nacosSvc.Key()})
	snap = h.mustFlush()
	if len(snap.Services) != 1 || snap.Services[0] != zkSvc {
		t.Errorf("got %s; want zk's service", describe(snap))
	}
	// A change in a shadowed registry changes nothing served.
	h.sink("eureka").Upsert([]*registry.Service{svc("ORDERS", "10.0.0.3", "10.0.0.4")})
	h.noSnapshot()
}

func TestDuplicateWithinOneRegistry(t *testing.T) {
	// Two services of one registry with the same identity (here: names differing in case) are
	// combined too, and reported, but not labelled by registry: there is only one.
	h := newHarness(t, Options{}, "nacos")
	h.sink("nacos").Replace([]*registry.Service{svc("Orders", "10.0.0.1"), svc("orders", "10.0.0.2")})
	got := h.mustFlush().Services
	if len(got) != 1 || len(got[0].Instances) != 2 {
		t.Fatalf("got %+v", got)
	}
	if _, ok := got[0].Instances[0].Labels[RegistryLabel]; ok {
		t.Error("registry label set on a duplicate within one registry")
	}
	if d := h.status("nacos").Duplicates; len(d) != 1 {
		t.Errorf("duplicates %+v", d)
	}
}

func TestStatusIsJSON(t *testing.T) {
	h := newHarness(t, Options{}, "zk", "nacos")
	h.sink("zk").Replace([]*registry.Service{svc("orders", "10.0.0.1")})
	h.sink("nacos").Replace([]*registry.Service{svc("orders", "10.0.0.2")})
	h.sink("nacos").Reject("/dubbo/x/providers/bad", "bad-url", errStr("missing host"))
	h.sink("zk").Fail(errStr("session expired"))
	h.mustFlush()
	b, err := json.Marshal(h.m.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"zk"`, `"reason":"failure"`, `"rule":"merge"`, `"where":"/dubbo/x/providers/bad"`, `"lastError":"session expired"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s: %s", want, b)
		}
	}
}

type errStr string

func (e errStr) Error() string { return string(e) }

func equalPorts(a, b []registry.Port) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Services of one registry whose names differ only in case map to one identity; the log and the
// status page used to blame "several registries". They now say which services of which
// registry, and what was done.
func TestDuplicateSummarySaysWhatHappened(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		regs     []string
		services map[string][]string // registry -> service names
		want     string
	}{
		{"two services of one registry", Options{}, []string{"nacos"},
			map[string][]string{"nacos": {"Orders", "orders"}},
			`services "application:Orders" and "application:orders" of registry "nacos" map to the same host orders; merged into one service`},
		{"two registries", Options{}, []string{"zk", "nacos"},
			map[string][]string{"zk": {"orders"}, "nacos": {"orders"}},
			`registries "zk", "nacos" report orders; merged into one service`},
		{"both, prefer", Options{Duplicates: Duplicates{Mode: DuplicatePrefer, Prefer: []string{"nacos"}}}, []string{"zk", "nacos"},
			map[string][]string{"zk": {"orders"}, "nacos": {"Orders", "orders"}},
			`registries "nacos", "zk" report orders; services "application:Orders" and "application:orders" of registry "nacos" map to the same host orders; only application:Orders of registry "nacos" is served`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			h := newHarness(t, tc.opts, tc.regs...)
			for _, r := range tc.regs {
				var ss []*registry.Service
				for i, n := range tc.services[r] {
					ss = append(ss, svc(n, fmt.Sprintf("10.0.%d.%d", len(r), i+1)))
				}
				h.sink(r).Replace(ss)
			}
			h.mustFlush()
			d := h.status(tc.regs[0]).Duplicates
			if len(d) != 1 || d[0].Summary != tc.want {
				t.Fatalf("duplicates %+v\nwant summary %q", d, tc.want)
			}
			if !strings.Contains(logs.String(), "msg="+strconv.Quote(tc.want)) {
				t.Errorf("log lacks the summary:\n%s", logs.String())
			}
			if len(tc.regs) == 1 && strings.Contains(logs.String(), "several registries") {
				t.Errorf("log blames several registries for one registry's services:\n%s", logs.String())
			}
		})
	}
}
