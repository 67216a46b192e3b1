package bridge

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/mcp"
	"github.com/mcp-bridge/mcp-bridge/merge"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// The staged push's tests drive the bridge with a scripted producer standing in for translate and
// the rules engine: each step names, per service, its endpoints ("10.0.0.1" inline; "we:10.0.0.1"
// a WorkloadEntry) and its route (the VirtualService's content; "" none). Resources of equal
// content are the same pointer, as the producer contract requires.

// drainStep is one push (or, with expire, the drain timer firing) at a clock offset.
type drainStep struct {
	at       time.Duration
	expire   bool                // the drain timer fires instead of a push
	services map[string]svcState // by service name; absent: no resources
	// want: per service, the endpoint addresses served (inline and WorkloadEntries, sorted).
	want       map[string][]string
	wantHeld   int
	wantStaged int // staged pushes so far
	// wantSamePointer: the service's ServiceEntry is the very resource served at the previous step.
	wantSamePointer []string
}

type svcState struct {
	endpoints []string
	route     string
}

type scriptProducer struct {
	cur   map[string]svcState
	cache map[string]*istio.Resource
}

func (p *scriptProducer) Name() string { return "script" }

func (p *scriptProducer) Produce(*merge.Snapshot) *Production {
	out := &Production{Resources: map[string][]*istio.Resource{}}
	for _, name := range slices.Sorted(maps.Keys(p.cur)) {
		s := p.cur[name]
		var inline, wes []string
		for _, e := range s.endpoints {
			if a, ok := strings.CutPrefix(e, "we:"); ok {
				wes = append(wes, a)
			} else {
				inline = append(inline, e)
			}
		}
		out.Resources[istio.CollectionServiceEntry] = append(out.Resources[istio.CollectionServiceEntry], p.se(name, inline))
		for _, a := range wes {
			out.Resources[istio.CollectionWorkloadEntry] = append(out.Resources[istio.CollectionWorkloadEntry], p.we(name, a))
		}
		if s.route != "" {
			out.Resources[istio.CollectionVirtualService] = append(out.Resources[istio.CollectionVirtualService], p.vs(name, s.route))
		}
	}
	for coll := range out.Resources {
		slices.SortFunc(out.Resources[coll], byName)
	}
	for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry, istio.CollectionVirtualService} {
		if _, ok := out.Resources[coll]; !ok {
			out.Resources[coll] = nil
		}
	}
	return out
}

func (p *scriptProducer) memo(key string, make func() (*istio.Resource, error)) *istio.Resource {
	if r, ok := p.cache[key]; ok {
		return r
	}
	r, err := make()
	if err != nil {
		panic(err)
	}
	p.cache[key] = r
	return r
}

func (p *scriptProducer) se(name string, addrs []string) *istio.Resource {
	return p.memo(fmt.Sprint("se ", name, addrs), func() (*istio.Resource, error) {
		spec := &networking.ServiceEntry{Hosts: []string{name + ".test"}, Location: networking.ServiceEntry_MESH_INTERNAL,
			Resolution: networking.ServiceEntry_STATIC, Ports: []*networking.ServicePort{{Number: 50051, Name: "grpc", Protocol: "GRPC"}}}
		if len(addrs) == 0 {
			spec.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": name}}
		}
		for _, a := range addrs {
			spec.Endpoints = append(spec.Endpoints, &networking.WorkloadEntry{Address: a, Labels: map[string]string{"app": name}})
		}
		r, err := istio.NewResource(istio.CollectionServiceEntry, "shop", name+".test", nil, nil, spec)
		if r != nil {
			r.Source = "reg/" + name
		}
		return r, err
	})
}

func (p *scriptProducer) we(name, addr string) *istio.Resource {
	return p.memo("we "+name+addr, func() (*istio.Resource, error) {
		spec := &networking.WorkloadEntry{Address: addr, Labels: map[string]string{"app": name}}
		r, err := istio.NewResource(istio.CollectionWorkloadEntry, "shop", name+"-"+strings.ReplaceAll(addr, ".", "-"), nil, nil, spec)
		if r != nil {
			r.Source = "reg/" + name + "#" + addr
		}
		return r, err
	})
}

func (p *scriptProducer) vs(name, route string) *istio.Resource {
	return p.memo("vs "+name+route, func() (*istio.Resource, error) {
		spec := &networking.VirtualService{Hosts: []string{name + ".test"}, Http: []*networking.HTTPRoute{{Name: route,
			Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: name + ".test", Subset: route}}}}}}
		r, err := istio.NewResource(istio.CollectionVirtualService, "shop", name+".test", nil, nil, spec)
		if r != nil {
			r.Source = "reg/" + name
		}
		return r, err
	})
}

// servedEndpoints is, per service, the endpoint addresses the bridge last served.
func servedEndpoints(t *testing.T, b *Bridge) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, r := range b.Output().Resources[istio.CollectionServiceEntry] {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(r.Name, ".test")
		got[name] = []string{}
		for _, ep := range spec.(*networking.ServiceEntry).GetEndpoints() {
			got[name] = append(got[name], ep.GetAddress())
		}
	}
	for _, r := range b.Output().Resources[istio.CollectionWorkloadEntry] {
		spec, err := r.DecodeSpec()
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(r.Source[:strings.IndexByte(r.Source, '#')], "reg/")
		got[name] = append(got[name], "we:"+spec.(*networking.WorkloadEntry).GetAddress())
	}
	for _, v := range got {
		slices.Sort(v)
	}
	return got
}

func TestStagedPush(t *testing.T) {
	const a, b, c = "10.0.0.1", "10.0.0.2", "10.0.0.3"
	one := func(eps []string, route string) map[string]svcState {
		return map[string]svcState{"orders": {endpoints: eps, route: route}}
	}
	tests := []struct {
		name  string
		grace time.Duration
		steps []drainStep
	}{
		{"the last tagged instance leaves: route first, endpoint after the grace", time.Second, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{at: 10 * time.Millisecond, services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 1, wantSamePointer: []string{"orders"}},
			{at: 500 * time.Millisecond, expire: true, want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 1, wantSamePointer: []string{"orders"}},
			{at: 1010 * time.Millisecond, expire: true, want: map[string][]string{"orders": {a}}, wantStaged: 1},
		}},
		{"an endpoint removal without a routing change goes at once", time.Second, []drainStep{
			{services: one([]string{a, b, c}, "v1"), want: map[string][]string{"orders": {a, b, c}}},
			{services: one([]string{a, b}, "v1"), want: map[string][]string{"orders": {a, b}}},
		}},
		{"a routing change that removes no endpoint is not staged", time.Second, []drainStep{
			{services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a}}},
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
		}},
		{"added and removed together: the new endpoints at once, the removed one held", time.Second, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{services: one([]string{a, c}, "tag-blue"), want: map[string][]string{"orders": {a, b, c}}, wantHeld: 1, wantStaged: 1},
			{at: time.Second, expire: true, want: map[string][]string{"orders": {a, c}}, wantStaged: 1},
		}},
		{"the endpoint returns within the grace: nothing held, nothing stale later", time.Second, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 1},
			{at: 100 * time.Millisecond, services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}, wantStaged: 1},
			{at: 200 * time.Millisecond, services: one([]string{a}, "v1"), want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 2},
			{at: 1199 * time.Millisecond, expire: true, want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 2},
			{at: 1200 * time.Millisecond, expire: true, want: map[string][]string{"orders": {a}}, wantStaged: 2},
		}},
		{"a later push supersedes: its own removal without a routing change goes at once, the held one stays", time.Second, []drainStep{
			{services: one([]string{a, b, c}, "tag-gray"), want: map[string][]string{"orders": {a, b, c}}},
			{services: one([]string{a, b}, "baseline"), want: map[string][]string{"orders": {a, b, c}}, wantHeld: 1, wantStaged: 1},
			{at: 300 * time.Millisecond, services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a, c}}, wantHeld: 1, wantStaged: 1},
			{at: time.Second, expire: true, want: map[string][]string{"orders": {a}}, wantStaged: 1},
		}},
		{"each endpoint is held the grace from its own removal", time.Second, []drainStep{
			{services: one([]string{a, b, c}, "r1"), want: map[string][]string{"orders": {a, b, c}}},
			{services: one([]string{a, b}, "r2"), want: map[string][]string{"orders": {a, b, c}}, wantHeld: 1, wantStaged: 1},
			{at: 500 * time.Millisecond, services: one([]string{a}, "r3"), want: map[string][]string{"orders": {a, b, c}}, wantHeld: 2, wantStaged: 2},
			{at: time.Second, expire: true, want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 2},
			{at: 1500 * time.Millisecond, expire: true, want: map[string][]string{"orders": {a}}, wantStaged: 2},
		}},
		{"the service goes while held: nothing is resurrected", time.Second, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 1},
			{at: 100 * time.Millisecond, services: nil, want: map[string][]string{}, wantStaged: 1},
			{at: 200 * time.Millisecond, services: one([]string{a}, ""), want: map[string][]string{"orders": {a}}, wantStaged: 1},
		}},
		{"the rules go while held: the hold ends", time.Second, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a, b}}, wantHeld: 1, wantStaged: 1},
			{at: 100 * time.Millisecond, services: one([]string{a}, ""), want: map[string][]string{"orders": {a}}, wantStaged: 1},
		}},
		{"another service's routing change holds nothing of this one", time.Second, []drainStep{
			{services: map[string]svcState{"orders": {[]string{a}, "r1"}, "users": {[]string{b, c}, "r1"}}, want: map[string][]string{"orders": {a}, "users": {b, c}}},
			{services: map[string]svcState{"orders": {[]string{a}, "r2"}, "users": {[]string{b}, "r1"}}, want: map[string][]string{"orders": {a}, "users": {b}}},
		}},
		{"workloadEntry mode: the removed WorkloadEntry stays for the grace", time.Second, []drainStep{
			{services: one([]string{"we:" + a, "we:" + b}, "tag-gray"), want: map[string][]string{"orders": {"we:" + a, "we:" + b}}},
			{services: one([]string{"we:" + a}, "baseline"), want: map[string][]string{"orders": {"we:" + a, "we:" + b}}, wantHeld: 1, wantStaged: 1, wantSamePointer: []string{"orders"}},
			{at: 400 * time.Millisecond, services: one([]string{"we:" + a, "we:" + c}, "baseline"), want: map[string][]string{"orders": {"we:" + a, "we:" + b, "we:" + c}}, wantHeld: 1, wantStaged: 1},
			{at: time.Second, expire: true, want: map[string][]string{"orders": {"we:" + a, "we:" + c}}, wantStaged: 1},
		}},
		{"staging off: routing and endpoints change together", -1, []drainStep{
			{services: one([]string{a, b}, "tag-gray"), want: map[string][]string{"orders": {a, b}}},
			{services: one([]string{a}, "baseline"), want: map[string][]string{"orders": {a}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &scriptProducer{cache: map[string]*istio.Resource{}}
			reg := prometheus.NewRegistry()
			br := New(Options{Producers: []Producer{p}, Server: mcp.NewServer(mcp.Options{}), Metrics: reg, DrainGrace: tt.grace})
			t0 := time.Now()
			// The drain timer runs on the real clock and may fire (reading this clock) while a step
			// sets it: a fire is the same as the step's own expire, but the clock needs a lock.
			var clockMu sync.Mutex
			clock := t0
			br.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
			defer func() {
				br.pushMu.Lock()
				if br.drain.timer != nil {
					br.drain.timer.Stop()
				}
				br.pushMu.Unlock()
			}()
			var prevSE map[string]*istio.Resource
			for i, st := range tt.steps {
				clockMu.Lock()
				clock = t0.Add(st.at)
				clockMu.Unlock()
				if st.expire {
					br.drainExpired()
				} else {
					p.cur = st.services
					br.Push(&merge.Snapshot{})
				}
				if got := servedEndpoints(t, br); !equalEndpoints(got, st.want) {
					t.Errorf("step %d: served %v, want %v", i, got, st.want)
				}
				if got := testutil.ToFloat64(br.metrics.held); got != float64(st.wantHeld) {
					t.Errorf("step %d: mcp_bridge_held_endpoints %v, want %d", i, got, st.wantHeld)
				}
				if got := len(br.Held()); got != st.wantHeld {
					t.Errorf("step %d: Held() lists %d, want %d", i, got, st.wantHeld)
				}
				if got := testutil.ToFloat64(br.metrics.staged); got != float64(st.wantStaged) {
					t.Errorf("step %d: mcp_bridge_staged_pushes_total %v, want %d", i, got, st.wantStaged)
				}
				cur := map[string]*istio.Resource{}
				for _, r := range br.Output().Resources[istio.CollectionServiceEntry] {
					cur[strings.TrimSuffix(r.Name, ".test")] = r
				}
				for _, name := range st.wantSamePointer {
					if cur[name] == nil || cur[name] != prevSE[name] {
						t.Errorf("step %d: %s's ServiceEntry is a new resource, want the one served before (no change for Istiod)", i, name)
					}
				}
				prevSE = cur
			}
		})
	}
}

func equalEndpoints(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			return false
		}
	}
	return true
}

// TestStagedPushTimer: the second stage needs no further registry event; the drain timer serves
// it once the grace is over, and the MCP server gets the change.
func TestStagedPushTimer(t *testing.T) {
	p := &scriptProducer{cache: map[string]*istio.Resource{}}
	srv := mcp.NewServer(mcp.Options{})
	const grace = 50 * time.Millisecond
	br := New(Options{Producers: []Producer{p}, Server: srv, DrainGrace: grace})
	p.cur = map[string]svcState{"orders": {[]string{"10.0.0.1", "10.0.0.2"}, "tag-gray"}}
	br.Push(&merge.Snapshot{})
	p.cur = map[string]svcState{"orders": {[]string{"10.0.0.1"}, "baseline"}}
	staged := time.Now()
	br.Push(&merge.Snapshot{})
	if n := len(br.Held()); n != 1 {
		t.Fatalf("held %d endpoints after the staged push, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(br.Held()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the held endpoint was still served 10s after a 50ms grace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(staged)
	if took < grace {
		t.Errorf("the held endpoint went after %v, before the %v grace", took, grace)
	}
	t.Logf("measure: held endpoint removed %v after the staged push (grace %v)", took.Round(time.Millisecond), grace)
	if got := servedEndpoints(t, br)["orders"]; !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("served %v after the grace, want [10.0.0.1]", got)
	}
}

// TestStagedPushAfterRun: a push after Run has returned (a reload finishing during shutdown)
// arms no drain timer, so no goroutine serves after the bridge has stopped; before, the timer
// served the second stage grace later, into a server being shut down.
func TestStagedPushAfterRun(t *testing.T) {
	p := &scriptProducer{cache: map[string]*istio.Resource{}}
	m, err := merge.New(merge.Options{Key: func(s *registry.Service) string { return s.Name }})
	if err != nil {
		t.Fatal(err)
	}
	const grace = 20 * time.Millisecond
	br := New(Options{Merger: m, Producers: []Producer{p}, Server: mcp.NewServer(mcp.Options{}), DrainGrace: grace})
	p.cur = map[string]svcState{"orders": {[]string{"10.0.0.1", "10.0.0.2"}, "tag-gray"}}
	br.Push(&merge.Snapshot{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	br.Run(ctx)

	p.cur = map[string]svcState{"orders": {[]string{"10.0.0.1"}, "baseline"}}
	br.Reconfigure([]Producer{p})
	if n := len(br.Held()); n != 1 {
		t.Fatalf("held %d endpoints after the staged push, want 1", n)
	}
	br.pushMu.Lock()
	armed := br.drain.timer != nil
	br.pushMu.Unlock()
	if armed {
		t.Error("a push after Run returned armed the drain timer")
	}
	// Were a timer armed anyway, it would have fired well within this.
	time.Sleep(10 * grace)
	if n := len(br.Held()); n != 1 {
		t.Errorf("held %d endpoints after Run returned and the grace passed, want 1 (nothing serves after Run)", n)
	}
}
