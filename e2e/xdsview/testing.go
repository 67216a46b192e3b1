package xdsview

import (
	"context"
	"fmt"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"slices"
	"strings"
	"testing"
	"time"
)

// Connect returns a View of Istiod at addr (its plaintext xDS address) closed when the test ends.
func Connect(t testing.TB, addr string, opts Options) *View {
	t.Helper()
	v, err := New(addr, opts)
	if err != nil {
		t.Fatalf("xdsview: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// WaitFor waits until cond accepts the state and returns a copy of it, failing the test with
// cond's last answer after timeout. cond runs with the View locked, as in Wait.
func (v *View) WaitFor(t testing.TB, what string, timeout time.Duration, cond func(*Snapshot) error) *Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := v.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("xdsview: waiting for %s: %v", what, err)
	}
	return s
}

// waitT is wait (no copy of the state) failing the test on timeout.
func (v *View) waitT(t testing.TB, what string, timeout time.Duration, cond func(*Snapshot) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := v.wait(ctx, cond); err != nil {
		t.Fatalf("xdsview: waiting for %s: %v", what, err)
	}
}

// WaitClusterEndpoints waits until EDS gives cluster (e.g. "outbound|20880||foo.bar") exactly the
// endpoint addresses want (ip:port, any order), and returns when the EDS response that first
// carried that endpoint set arrived. An empty want waits for a cluster with no endpoints.
func (v *View) WaitClusterEndpoints(t testing.TB, cluster string, want []string, timeout time.Duration) time.Time {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var seen time.Time
	v.waitT(t, fmt.Sprintf("endpoints %v of %s", want, cluster), timeout, func(s *Snapshot) error {
		err := EndpointsEqual(s, cluster, want)
		seen = s.Changed[EDS][cluster]
		return err
	})
	return seen
}

// WaitClusterGone waits until CDS no longer has cluster and returns when that CDS response arrived.
func (v *View) WaitClusterGone(t testing.TB, cluster string, timeout time.Duration) time.Time {
	t.Helper()
	var seen time.Time
	v.waitT(t, "removal of cluster "+cluster, timeout, func(s *Snapshot) error {
		if _, ok := s.Clusters[cluster]; ok {
			return fmt.Errorf("cluster %s still present", cluster)
		}
		seen = s.Changed[CDS][cluster]
		return nil
	})
	return seen
}

// EndpointsEqual checks that cluster exists and its endpoint addresses are exactly want (sorted).
func EndpointsEqual(s *Snapshot, cluster string, want []string) error {
	if _, ok := s.Clusters[cluster]; !ok {
		return fmt.Errorf("no cluster %s; clusters: %s", cluster, strings.Join(ClusterNames(s, "outbound|"), ", "))
	}
	eps, ok := s.Endpoints[cluster]
	if !ok {
		return fmt.Errorf("cluster %s has no EDS answer yet", cluster)
	}
	got := make([]string, len(eps))
	for i, e := range eps {
		got[i] = e.Address
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("cluster %s has endpoints %v", cluster, got)
	}
	return nil
}

// ClusterNames lists the snapshot's cluster names that start with prefix, sorted.
func ClusterNames(s *Snapshot, prefix string) []string {
	var names []string
	for name := range s.Clusters {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// VirtualHost returns the virtual host of route configuration routeName (a sidecar's outbound
// routes are named by port, e.g. "7070") that serves domain, or nil.
func (s *Snapshot) VirtualHost(routeName, domain string) *routev3.VirtualHost {
	for _, vh := range s.Routes[routeName].GetVirtualHosts() {
		if slices.Contains(vh.GetDomains(), domain) {
			return vh
		}
	}
	return nil
}

// ClusterWeights returns where a route sends traffic: cluster name to weight, a single cluster
// weighing 1. It is empty for routes that do not forward (redirects, direct responses).
func ClusterWeights(r *routev3.Route) map[string]uint32 {
	out := map[string]uint32{}
	a := r.GetRoute()
	if c := a.GetCluster(); c != "" {
		out[c] = 1
	}
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		out[wc.GetName()] = wc.GetWeight().GetValue()
	}
	return out
}
