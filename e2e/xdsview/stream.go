package xdsview

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// run keeps a stream open until ctx ends, reconnecting with a short backoff (50 ms growing to
// 500 ms): tests restart Istiod and expect the view to follow within moments.
func (v *View) run(ctx context.Context) {
	defer close(v.done)
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := v.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		v.mu.Lock()
		v.connected = false
		v.lastErr = err
		v.mu.Unlock()
		v.log.Info("xdsview: stream ended, reconnecting", "addr", v.addr, "err", err, "backoff", backoff)
		if time.Since(start) > 5*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*3/2, 500*time.Millisecond)
	}
}

// typeState is one type's SotW bookkeeping on the current stream.
type typeState struct {
	version, nonce string
}

// stream runs one ADS stream: wildcard CDS and LDS, then EDS and RDS for the names they carry.
// Every send happens on this goroutine, as gRPC streams require.
func (v *View) stream(ctx context.Context) error {
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(v.conn)
	st, err := client.StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("opening ADS stream: %w", err)
	}
	states := map[Type]*typeState{CDS: {}, EDS: {}, LDS: {}, RDS: {}}
	send := func(t Type, names []string, nack error) error {
		s := states[t]
		req := &discoveryv3.DiscoveryRequest{
			Node:          v.node,
			TypeUrl:       string(t),
			VersionInfo:   s.version,
			ResponseNonce: s.nonce,
			ResourceNames: names,
		}
		if nack != nil {
			req.ErrorDetail = &status.Status{Code: 3, Message: nack.Error()} // INVALID_ARGUMENT
		}
		if err := st.Send(req); err != nil {
			return fmt.Errorf("sending %s request: %w", t, err)
		}
		return nil
	}
	// sent holds the EDS and RDS names last requested on this stream; after every response the
	// names the state calls for are compared with it, and a changed list is requested at once.
	sent := map[Type][]string{}
	subscribe := func() error {
		v.mu.Lock()
		want := map[Type][]string{EDS: slices.Clone(v.edsNames), RDS: slices.Clone(v.rdsNames)}
		v.mu.Unlock()
		for _, t := range []Type{EDS, RDS} {
			if slices.Equal(want[t], sent[t]) {
				continue
			}
			if err := send(t, want[t], nil); err != nil {
				return err
			}
			sent[t] = want[t]
		}
		return nil
	}
	for _, t := range []Type{CDS, LDS} {
		if err := send(t, nil, nil); err != nil {
			return err
		}
	}
	// After a reconnect the last state already names clusters and routes: resubscribe to them.
	if err := subscribe(); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		at := time.Now()
		t := Type(resp.GetTypeUrl())
		s, ok := states[t]
		if !ok {
			continue // a type this view did not ask for
		}
		applyErr := v.apply(t, resp, at)
		s.nonce = resp.GetNonce()
		if applyErr != nil {
			v.log.Warn("xdsview: rejecting response", "type", t, "err", applyErr)
		} else {
			s.version = resp.GetVersionInfo()
		}
		v.mu.Lock()
		v.connected, v.lastErr = true, nil
		v.mu.Unlock()
		if err := send(t, sent[t], applyErr); err != nil { // ACK or NACK; sent[CDS|LDS] is nil: wildcard
			return err
		}
		if err := subscribe(); err != nil {
			return err
		}
	}
}

// apply decodes a response and updates the state. CDS and LDS responses are the full state of
// their type; EDS and RDS responses may carry only the resources that changed (Istiod sends
// partial EDS pushes), so those are merged.
func (v *View) apply(t Type, resp *discoveryv3.DiscoveryResponse, at time.Time) error {
	var size int
	for _, r := range resp.GetResources() {
		size += len(r.GetValue())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.stats[t]
	st.Responses++
	st.Resources += len(resp.GetResources())
	st.Bytes += int64(size)
	v.stats[t] = st

	changed := v.state.Changed[t]
	mark := func(name string) { changed[name] = at }
	var err error
	switch t {
	case CDS:
		var next map[string]*clusterv3.Cluster
		if next, err = decodeAll(resp, func() *clusterv3.Cluster { return &clusterv3.Cluster{} }, (*clusterv3.Cluster).GetName); err == nil {
			replace(v.state.Clusters, next, mark)
			v.edsNames = v.edsNames[:0]
			for name, c := range next {
				if c.GetType() == clusterv3.Cluster_EDS {
					v.edsNames = append(v.edsNames, edsName(c))
				} else if la := c.GetLoadAssignment(); la != nil {
					v.setEndpoints(name, endpoints(la), at)
				}
			}
			slices.Sort(v.edsNames)
			for name := range v.state.Endpoints {
				if _, ok := slices.BinarySearch(v.edsNames, name); !ok && next[name].GetLoadAssignment() == nil {
					delete(v.state.Endpoints, name)
					v.state.Changed[EDS][name] = at
				}
			}
		}
	case LDS:
		var next map[string]*listenerv3.Listener
		if next, err = decodeAll(resp, func() *listenerv3.Listener { return &listenerv3.Listener{} }, (*listenerv3.Listener).GetName); err == nil {
			replace(v.state.Listeners, next, mark)
			v.rdsNames = routeNames(next)
			for name := range v.state.Routes {
				if _, ok := slices.BinarySearch(v.rdsNames, name); !ok {
					delete(v.state.Routes, name)
					v.state.Changed[RDS][name] = at
				}
			}
		}
	case EDS:
		var next map[string]*endpointv3.ClusterLoadAssignment
		if next, err = decodeAll(resp, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }, (*endpointv3.ClusterLoadAssignment).GetClusterName); err == nil {
			for name, cla := range next {
				v.setEndpoints(name, endpoints(cla), at)
			}
		}
	case RDS:
		var next map[string]*routev3.RouteConfiguration
		if next, err = decodeAll(resp, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }, (*routev3.RouteConfiguration).GetName); err == nil {
			for name, rc := range next {
				if old, ok := v.state.Routes[name]; !ok || !proto.Equal(old, rc) {
					mark(name)
				}
				v.state.Routes[name] = rc
			}
		}
	}
	if err != nil {
		return err
	}
	v.state.Updated = at
	close(v.changed)
	v.changed = make(chan struct{})
	return nil
}

func (v *View) setEndpoints(cluster string, eps []Endpoint, at time.Time) {
	if old, ok := v.state.Endpoints[cluster]; !ok || !slices.Equal(old, eps) {
		v.state.Changed[EDS][cluster] = at
	}
	v.state.Endpoints[cluster] = eps
}

// decodeAll unmarshals every resource of a response, keyed by name.
func decodeAll[M proto.Message](resp *discoveryv3.DiscoveryResponse, newMsg func() M, name func(M) string) (map[string]M, error) {
	out := make(map[string]M, len(resp.GetResources()))
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			return nil, fmt.Errorf("resource %d has type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl())
		}
		m := newMsg()
		if err := proto.Unmarshal(a.GetValue(), m); err != nil {
			return nil, fmt.Errorf("resource %d of %s: %w", i, resp.GetTypeUrl(), err)
		}
		out[name(m)] = m
	}
	return out, nil
}

// replace makes cur equal to next, marking every name added, changed or removed.
func replace[M proto.Message](cur, next map[string]M, mark func(string)) {
	for name, old := range cur {
		if n, ok := next[name]; !ok || !proto.Equal(old, n) {
			mark(name)
		}
		if _, ok := next[name]; !ok {
			delete(cur, name)
		}
	}
	for name, n := range next {
		if _, ok := cur[name]; !ok {
			mark(name)
		}
		cur[name] = n
	}
}

func edsName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// routeNames lists the RDS route configurations the listeners' HTTP connection managers name.
func routeNames(listeners map[string]*listenerv3.Listener) []string {
	var names []string
	for _, l := range listeners {
		chains := slices.Clone(l.GetFilterChains())
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(chains, dc)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil || tc.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if err := tc.UnmarshalTo(&hcm); err != nil {
					continue
				}
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					names = append(names, n)
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// endpoints flattens a load assignment into endpoints sorted by address.
func endpoints(cla *endpointv3.ClusterLoadAssignment) []Endpoint {
	eps := []Endpoint{}
	for _, le := range cla.GetEndpoints() {
		loc := le.GetLocality()
		locality := ""
		if loc.GetRegion() != "" || loc.GetZone() != "" || loc.GetSubZone() != "" {
			locality = loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		}
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			eps = append(eps, Endpoint{
				Address:  net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
				Weight:   lb.GetLoadBalancingWeight().GetValue(),
				Health:   lb.GetHealthStatus().String(),
				Locality: locality,
				Priority: le.GetPriority(),
			})
		}
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Priority, b.Priority))
	})
	return eps
}
