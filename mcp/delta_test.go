package mcp

import (
	"context"
	"slices"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// deltaClient is an incremental xDS client on its own stream.
type deltaClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discovery.DeltaDiscoveryResponse
	done   chan error
}

func startDelta(t *testing.T, addr string) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(dial(t, addr)).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open delta stream: %v", err)
	}
	d := &deltaClient{t: t, stream: stream, resps: make(chan *discovery.DeltaDiscoveryResponse, 100), done: make(chan error, 1)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				d.done <- err
				return
			}
			d.resps <- r
		}
	}()
	return d
}

func (d *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	d.t.Helper()
	if req.TypeUrl == "" {
		req.TypeUrl = seV1
	}
	if err := d.stream.Send(req); err != nil {
		d.t.Fatalf("delta send: %v", err)
	}
}

// next returns the next response, checks every resource decodes as Istio would, and ACKs it.
func (d *deltaClient) next() *discovery.DeltaDiscoveryResponse {
	d.t.Helper()
	select {
	case r := <-d.resps:
		for _, res := range r.GetResources() {
			env := &mcpapi.Resource{}
			if err := res.GetResource().UnmarshalTo(env); err != nil || env.GetMetadata().GetName() != res.GetName() {
				d.t.Fatalf("delta resource %s: envelope %v, err %v", res.GetName(), env.GetMetadata(), err)
			}
		}
		d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
		return r
	case err := <-d.done:
		d.t.Fatalf("delta stream ended: %v", err)
	case <-time.After(5 * time.Second):
		d.t.Fatal("no delta response within 5s")
	}
	return nil
}

func (d *deltaClient) expectNone() {
	d.t.Helper()
	select {
	case r := <-d.resps:
		d.t.Fatalf("unexpected delta response: resources %v removed %v", deltaNames(r), r.GetRemovedResources())
	case <-time.After(200 * time.Millisecond):
	}
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName()+"@"+res.GetVersion())
	}
	return out
}

func at(rs ...*Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Namespace+"/"+r.Name+"@"+r.Version)
	}
	return out
}

// TestDelta: Delta clients get only what changed and what was removed, honour
// initial_resource_versions and explicit subscribe/unsubscribe.
func TestDelta(t *testing.T) {
	t.Parallel()
	a, b, c, d := serviceEntry("default", "a", 1, 0), serviceEntry("default", "b", 1, 0), serviceEntry("default", "c", 1, 0), serviceEntry("default", "d", 1, 0)
	b2, a2 := serviceEntry("default", "b", 1, 1), serviceEntry("default", "a", 1, 1)

	type step struct {
		set         []*Resource                      // new ServiceEntry state (nil: no Set)
		req         *discovery.DeltaDiscoveryRequest // request to send (nil: none)
		wantNone    bool
		wantNames   []string
		wantRemoved []string
	}
	cases := []struct {
		name  string
		start []*Resource
		steps []step
	}{
		{
			name:  "wildcard",
			start: []*Resource{a, b, c},
			steps: []step{
				{req: &discovery.DeltaDiscoveryRequest{}, wantNames: at(a, b, c)},
				{set: []*Resource{a, b2, d}, wantNames: at(b2, d), wantRemoved: []string{"default/c"}},
				{set: []*Resource{a, b2, d}, wantNone: true},
				{set: []*Resource{a2, b2, d}, wantNames: at(a2)},
			},
		},
		{
			name:  "initial resource versions",
			start: []*Resource{a, b},
			steps: []step{
				{req: &discovery.DeltaDiscoveryRequest{InitialResourceVersions: map[string]string{
					"default/a": a.Version, "default/b": "stale", "default/gone": "v1"}},
					wantNames: at(b), wantRemoved: []string{"default/gone"}},
			},
		},
		{
			name:  "initial versions all current",
			start: []*Resource{a},
			steps: []step{
				{req: &discovery.DeltaDiscoveryRequest{InitialResourceVersions: map[string]string{"default/a": a.Version}}, wantNames: nil},
				{set: []*Resource{a, b}, wantNames: at(b)},
			},
		},
		{
			name:  "explicit subscriptions",
			start: []*Resource{a, b},
			steps: []step{
				{req: &discovery.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"default/a"}}, wantNames: at(a)},
				{req: &discovery.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"default/b"}}, wantNames: at(b)},
				{req: &discovery.DeltaDiscoveryRequest{ResourceNamesUnsubscribe: []string{"default/a"}}, wantNone: true},
				{set: []*Resource{a2, b}, wantNone: true},
				{set: []*Resource{a2, b2}, wantNames: at(b2)},
				{set: []*Resource{a2}, wantRemoved: []string{"default/b"}},
				{req: &discovery.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"*"}}, wantNames: at(a2)},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{}, nil)
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: tc.start})
			cl := startDelta(t, srv.addr)
			first := true
			for i, st := range tc.steps {
				if st.set != nil {
					srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: st.set})
				}
				if st.req != nil {
					if first {
						st.req.Node = istiodNode()
						first = false
					}
					cl.send(st.req)
				}
				if st.wantNone {
					cl.expectNone()
					continue
				}
				r := cl.next()
				if got := deltaNames(r); !slices.Equal(got, st.wantNames) || !slices.Equal(r.GetRemovedResources(), st.wantRemoved) {
					t.Fatalf("step %d: got resources %v removed %v; want %v removed %v", i, got, r.GetRemovedResources(), st.wantNames, st.wantRemoved)
				}
				if r.GetTypeUrl() != seV1 || r.GetNonce() == "" || r.GetSystemVersionInfo() == "" {
					t.Fatalf("step %d: type %q nonce %q version %q", i, r.GetTypeUrl(), r.GetNonce(), r.GetSystemVersionInfo())
				}
			}
			cl.expectNone()
		})
	}
}
