package mcp

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestIstiodClientKeepalive holds an Istiod-like client idle for 46 s while it pings every 10 s
// (grpc-go's minimum client keepalive; Istiod pings every 30 s, which fails the same way, only
// later). With ServerOptions the stream survives and still carries pushes; the control, grpc-go's
// default server policy, sends GOAWAY too_many_pings. Both run in parallel with the other tests.
func TestIstiodClientKeepalive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		grpcOpts   []grpc.ServerOption
		wantGoaway bool
	}{
		{name: "ServerOptions", grpcOpts: nil},
		{name: "grpc-go default policy (control)", grpcOpts: []grpc.ServerOption{}, wantGoaway: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{}, tc.grpcOpts)
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 2, 0)}})
			urls := istio.TypeURLs(31)
			c := startAdsc(t, srv.addr, urls, adscOptions{keepalive: 10 * time.Second})
			seen := map[string]bool{}
			for len(seen) < len(urls) {
				seen[c.next(10*time.Second).GetTypeUrl()] = true
			}
			start := time.Now()
			if tc.wantGoaway {
				select {
				case <-c.done:
				case <-time.After(70 * time.Second):
					t.Fatal("grpc-go's default policy kept the pinging client for 70 s; the control no longer shows the failure")
				}
				if err := c.streamErr(); err == nil || !strings.Contains(err.Error(), "too_many_pings") {
					t.Fatalf("stream ended after %v with %v, want GOAWAY too_many_pings", time.Since(start), err)
				}
				t.Logf("control: disconnected after %v idle: %v", time.Since(start).Round(time.Second), c.streamErr())
				return
			}
			select {
			case <-c.done:
				t.Fatalf("disconnected after %v idle: %v", time.Since(start), c.streamErr())
			case <-time.After(46 * time.Second):
			}
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 2, 0), serviceEntry("default", "b", 1, 0)}})
			se := "networking.istio.io/v1/ServiceEntry"
			c.nextFor(se, 10*time.Second)
			if got, want := c.names(se), []string{"default/a", "default/b"}; !slices.Equal(got, want) {
				t.Fatalf("after 46 s idle the push carried %v, want %v", got, want)
			}
		})
	}
}

// TestIstioVersionsSync subscribes exactly as each Istio version does and checks that every type
// is answered under the exact type URL it was requested with, carrying resources Istiod can
// decode, and that the client shows up synced in Clients().
func TestIstioVersionsSync(t *testing.T) {
	t.Parallel()
	for _, minor := range []int{22, 23, 24, 29, 30, 31} {
		t.Run(fmt.Sprintf("1.%d", minor), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{}, nil)
			a, b := serviceEntry("default", "a", 3, 0), serviceEntry("prod", "b", 1, 0)
			a.Annotations = map[string]string{"mcp-bridge.io/source": "nacos"}
			srv.Set(map[string][]*Resource{
				istio.CollectionServiceEntry:  {a, b},
				istio.CollectionWorkloadEntry: {workloadEntry("default", "w1", 1, 0)},
			})
			urls := istio.TypeURLs(minor)
			c := startAdsc(t, srv.addr, urls, adscOptions{})
			got := map[string]int{}
			for range urls {
				r := c.next(10 * time.Second)
				got[r.GetTypeUrl()] = len(r.GetResources())
			}
			for _, u := range urls {
				n, ok := got[u]
				if !ok {
					t.Errorf("no response under the requested type URL %s", u)
					continue
				}
				want := 0
				switch CollectionOf(u) {
				case istio.CollectionServiceEntry:
					want = 2
				case istio.CollectionWorkloadEntry:
					want = 1
				}
				if n != want {
					t.Errorf("%s: %d resources, want %d", u, n, want)
				}
			}
			if len(got) != len(urls) {
				t.Errorf("responses for %d type URLs, requested %d: %v", len(got), len(urls), got)
			}
			seURL := urls[slices.IndexFunc(urls, func(u string) bool { return CollectionOf(u) == istio.CollectionServiceEntry })]
			c.mu.Lock()
			env := c.state[seURL]["default/a"]
			c.mu.Unlock()
			checkEnvelope(t, env, a)

			testkit.WaitUntil(t, 5*time.Second, "every type ACKed", func() bool {
				cl := srv.Clients()
				if len(cl) != 1 || len(cl[0].Types) != len(urls) {
					return false
				}
				for _, ts := range cl[0].Types {
					if !ts.Synced {
						return false
					}
				}
				return true
			})
			cl := srv.Clients()[0]
			if cl.NodeID != istiodNodeID || cl.Metadata["GENERATOR"] != "api" || cl.Protocol != "sotw" {
				t.Errorf("client status = %+v, want node %s, GENERATOR api, protocol sotw", cl, istiodNodeID)
			}
		})
	}
}

// checkEnvelope compares what Istiod would decode with what was Set.
func checkEnvelope(t *testing.T, env *mcpapi.Resource, want *Resource) {
	t.Helper()
	if env == nil {
		t.Fatalf("%s/%s not received", want.Namespace, want.Name)
	}
	md := env.GetMetadata()
	if md.GetName() != want.Namespace+"/"+want.Name || md.GetVersion() != want.Version ||
		!mapsEqual(md.GetLabels(), want.Labels) || !mapsEqual(md.GetAnnotations(), want.Annotations) {
		t.Errorf("metadata = %v, want name %s/%s version %s labels %v annotations %v", md, want.Namespace, want.Name,
			want.Version, want.Labels, want.Annotations)
	}
	if env.GetBody().GetTypeUrl() != want.Body.GetTypeUrl() || string(env.GetBody().GetValue()) != string(want.Body.GetValue()) {
		t.Errorf("body = %s (%d bytes), want %s (%d bytes)", env.GetBody().GetTypeUrl(), len(env.GetBody().GetValue()),
			want.Body.GetTypeUrl(), len(want.Body.GetValue()))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// TestUnknownTypesAnsweredEmpty: after the first Set, any type URL (MeshConfig, a type the
// bridge never sets, an Envoy type) gets an empty response under its exact URL.
func TestUnknownTypesAnsweredEmpty(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	urls := []string{istio.MeshConfigTypeURL, "example.com/v2beta3/Widget", "type.googleapis.com/envoy.config.cluster.v3.Cluster", "nonsense"}
	c := startAdsc(t, srv.addr, urls, adscOptions{})
	for range urls {
		r := c.next(5 * time.Second)
		if !slices.Contains(urls, r.GetTypeUrl()) || len(r.GetResources()) != 0 || r.GetVersionInfo() == "" || r.GetNonce() == "" {
			t.Errorf("response %s: %d resources, version %q, nonce %q; want an empty, versioned response under a requested URL",
				r.GetTypeUrl(), len(r.GetResources()), r.GetVersionInfo(), r.GetNonce())
		}
	}
}

// TestNoResponseBeforeFirstSet: a restarted bridge must not tell a running Istiod that all its
// config is gone before the registries have synced. Requests wait, on an open stream, for the
// first Set.
func TestNoResponseBeforeFirstSet(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{}, nil)
	urls := istio.TypeURLs(31)
	c := startAdsc(t, srv.addr, urls, adscOptions{})
	c.expectNone(300 * time.Millisecond)
	testkit.WaitUntil(t, 2*time.Second, "the client's 16 requests recorded", func() bool {
		cl := srv.Clients()
		return len(cl) == 1 && len(cl[0].Types) == len(urls)
	})
	srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 1, 0)}})
	seen := map[string]bool{}
	for range urls {
		seen[c.next(5*time.Second).GetTypeUrl()] = true
	}
	if len(seen) != len(urls) {
		t.Fatalf("after the first Set got responses for %d types, want %d", len(seen), len(urls))
	}
}
