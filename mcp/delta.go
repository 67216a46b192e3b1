package mcp

import (
	"maps"
	"slices"
	"strings"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// DeltaAggregatedResources serves incremental xDS. Istiod does not use it; other MCP clients
// may. Each response carries only what changed for the stream and the names removed.
func (a adsService) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return serveStream(a.s, stream.Context(), "delta", stream.Recv, (*conn).onDeltaRequest,
		func(c *conn) (bool, time.Duration, error) { return c.sendDelta(stream) })
}

// onDeltaRequest applies subscription changes and ACK/NACKs. A first request with no names is a
// wildcard subscription (the xDS legacy rule); "*" subscribes or unsubscribes the wildcard.
func (c *conn) onDeltaRequest(req *discovery.DeltaDiscoveryRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.recordNode(req.GetNode()); err != nil {
		return err
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		c.s.log.Debug("mcp: delta request without type_url ignored", "client", c.id)
		return nil
	}
	st, first, err := c.typeFor(typeURL)
	if err != nil {
		return err
	}
	// The names this request adds to what the stream keeps, counted before anything is kept.
	// Initial versions stay counted for the life of the stream (an over-estimate once some are
	// dropped, never an under-estimate).
	added := 0
	if first {
		for n, v := range req.GetInitialResourceVersions() {
			added += len(n) + len(v)
		}
	}
	for _, n := range req.GetResourceNamesSubscribe() {
		if _, ok := st.subscribed[n]; !ok {
			added += len(n)
		}
	}
	if err := c.addNameBytes(added); err != nil {
		return err
	}
	if first {
		st.subscribed = map[string]struct{}{}
		st.known = maps.Clone(req.GetInitialResourceVersions())
		if st.known == nil {
			st.known = map[string]string{}
		}
		st.wildcard = len(req.GetResourceNamesSubscribe()) == 0
		st.pending = true
	} else if nonce := req.GetResponseNonce(); nonce != "" && nonce == st.sentNonce {
		c.recordReply(st, st.sentVersion, nonce, req.GetErrorDetail())
	}
	for _, n := range req.GetResourceNamesSubscribe() {
		if n == "*" {
			st.wildcard = true
		} else {
			st.subscribed[n] = struct{}{}
		}
		st.pending, st.knownAt = true, ""
	}
	for _, n := range req.GetResourceNamesUnsubscribe() {
		if n == "*" {
			st.wildcard = false
		} else if _, ok := st.subscribed[n]; ok {
			delete(st.subscribed, n)
			c.nameBytes -= len(n)
		}
		delete(st.known, n) // the client drops it: a later subscription sends it again
		st.pending, st.knownAt = true, ""
	}
	c.poke()
	return nil
}

// sendDelta sends the first type that has changes for this stream, or its first response.
func (c *conn) sendDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) (bool, time.Duration, error) {
	if c.s.view.Load() == nil {
		return false, 0, nil
	}
	now := time.Now()
	var retry time.Duration
	c.mu.Lock()
	for _, t := range c.order {
		st := c.types[t]
		snap := c.s.snapshotFor(st.collection)
		if !st.pending && st.knownAt == snap.version {
			continue
		}
		if wait, left := c.paced(st, now); wait {
			if retry == 0 || left < retry {
				retry = left
			}
			continue
		}
		changed, removed := deltaDiff(st, snap)
		firstResponse := st.sentNonce == ""
		pending := st.pending
		st.pending = false
		if len(changed) == 0 && len(removed) == 0 && !firstResponse {
			continue // the client already has this version of everything it wants
		}
		resp := &discovery.DeltaDiscoveryResponse{
			SystemVersionInfo: snap.version,
			TypeUrl:           st.typeURL,
			Nonce:             c.s.nextNonce(),
			RemovedResources:  removed,
			Resources:         make([]*discovery.Resource, 0, len(changed)),
		}
		for _, e := range changed {
			resp.Resources = append(resp.Resources, &discovery.Resource{
				Name:     e.key,
				Version:  e.version,
				Resource: &anypb.Any{TypeUrl: istio.MCPResourceTypeURL, Value: e.envelope()},
			})
		}
		st.markSent(snap)
		var oldest time.Time // zero: an answer to a request, not a push
		if !pending && !firstResponse {
			oldest = st.recordPush(c.s.m, metricCollection(snap), snap)
		}
		st.lastPush = !firstResponse && !pending && st.sentSeq != 0
		st.sentSeq = snap.seq
		if st.lastPush {
			c.startDigest(now)
		}
		st.outstanding = true
		st.sentVersion, st.sentNonce, st.sentAt, st.sentResources = snap.version, resp.Nonce, now, len(changed)
		st.responses++
		c.mu.Unlock()
		start := time.Now()
		if err := stream.Send(resp); err != nil {
			return false, 0, err
		}
		c.recordSend(snap, proto.Size(resp), start)
		c.recordChangeToSend(st, snap, resp.Nonce, oldest)
		return true, 0, nil
	}
	c.mu.Unlock()
	return false, retry, nil
}

// deltaDiff computes what st's client lacks of snap and records that it will have it. A
// wildcard client that holds exactly the snapshot snap was built from gets snap's own change
// list: O(changed). Anything else is compared entry by entry.
func deltaDiff(st *typeState, snap *snapshot) (changed []*entry, removed []string) {
	defer func() {
		for _, e := range changed {
			st.known[e.key] = e.version
		}
		for _, n := range removed {
			delete(st.known, n)
		}
		st.knownAt = snap.version
	}()
	if st.wildcard && st.knownAt != "" && st.knownAt == snap.baseVersion {
		return snap.changed, snap.removed // shared and read-only
	}
	defer func() {
		// Map iteration order is random; responses should not be.
		slices.SortFunc(changed, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
		slices.Sort(removed)
	}()
	if st.wildcard {
		for _, e := range snap.entries {
			if v, ok := st.known[e.key]; !ok || v != e.version {
				changed = append(changed, e)
			}
		}
		for n := range st.known {
			if snap.lookup(n) == nil {
				removed = append(removed, n)
			}
		}
		return changed, removed
	}
	for n := range st.subscribed {
		e := snap.lookup(n)
		v, known := st.known[n]
		switch {
		case e != nil && (!known || v != e.version):
			changed = append(changed, e)
		case e == nil && known:
			removed = append(removed, n)
		}
	}
	for n := range st.known {
		if _, ok := st.subscribed[n]; !ok {
			delete(st.known, n) // held from initial_resource_versions but not subscribed
		}
	}
	return changed, removed
}
