package mcp

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adsService implements go-control-plane's AggregatedDiscoveryServiceServer.
type adsService struct{ s *Server }

func (a adsService) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return serveStream(a.s, stream.Context(), "sotw", stream.Recv, (*conn).onSotwRequest,
		func(c *conn) (bool, time.Duration, error) { return c.sendSotw(stream) })
}

// serveStream runs one ADS stream of either protocol: it registers the connection, applies the
// client's requests as they arrive (on their own goroutine, so a slow send never delays an ACK
// being recorded), and sends whatever the connection's state calls for until the stream ends.
//
// Sends run on a third goroutine so that a client that stops reading can be cut off: a send
// blocked by flow control for Limits.SendTimeout makes the handler return, which makes gRPC
// cancel the stream, which unblocks the send and frees the response it held.
func serveStream[Req any](s *Server, ctx context.Context, protocol string, recv func() (Req, error),
	onRequest func(*conn, Req) error, send func(*conn) (sent bool, retryIn time.Duration, err error)) error {
	c := newConn(s, ctx, protocol)
	if err := s.addConn(c); err != nil {
		return err
	}
	defer s.removeConn(c)
	s.log.Info("mcp: client connected", "client", c.id, "peer", c.peer, "protocol", c.protocol)
	go func() {
		for {
			req, err := recv()
			if err == nil {
				err = onRequest(c, req)
			} else {
				err = c.recvError(err)
			}
			if err != nil {
				c.recvErr <- err
				return
			}
		}
	}()
	sent := make(chan error, 1)
	go func() {
		sent <- c.loop(ctx, func() (bool, time.Duration, error) {
			t := time.AfterFunc(s.limits.SendTimeout, c.stall)
			defer t.Stop()
			return send(c)
		})
	}()
	var err error
	select {
	case err = <-sent:
	case <-c.stalled:
		err = s.reject(c, limitSendTimeout, codes.DeadlineExceeded,
			"the client has not taken a response for %v (it stopped reading)", s.limits.SendTimeout)
	}
	c.logEnd(err)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// recvError names the limit when gRPC refused a request over the receive limit.
func (c *conn) recvError(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max") {
		return c.s.reject(c, limitRecvMessage, codes.ResourceExhausted, "request over %d bytes: %s",
			c.s.limits.MaxRecvMessageBytes, truncate(st.Message(), logFieldBytes))
	}
	return err
}

func (c *conn) logEnd(err error) {
	if err == nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
		c.s.log.Info("mcp: client disconnected", "client", c.id, "node", c.node())
		return
	}
	c.s.log.Warn("mcp: client stream failed", "client", c.id, "node", c.node(), "err", err)
}

// onSotwRequest applies one DiscoveryRequest. Istiod's client sends every first request with a
// garbage response_nonce (the time of day), so a first request for a type is always answered with
// the current state whatever its nonce says.
func (c *conn) onSotwRequest(req *discovery.DiscoveryRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.recordNode(req.GetNode()); err != nil {
		return err
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		c.s.log.Debug("mcp: request without type_url ignored", "client", c.id)
		return nil
	}
	nonce := req.GetResponseNonce()
	if c.fillerAck(typeURL, nonce) {
		return nil // Istiod's ACK of a filler: no subscription, no reply to a real response
	}
	c.decideFill(typeURL)
	st, first, err := c.typeFor(typeURL)
	if err != nil {
		return err
	}
	names := requestedNames(req.GetResourceNames())
	switch {
	case first, nonce == "", st.sentNonce == "":
		// A new subscription, a client re-requesting from scratch, or anything before our first
		// response (which all still wait for the first Set).
		if err := c.setNames(st, names); err != nil {
			return err
		}
		st.pending, st.outstanding = true, false
	case nonce == st.sentNonce:
		c.recordReply(st, req.GetVersionInfo(), nonce, req.GetErrorDetail())
		if !slices.Equal(names, st.names) {
			if err := c.setNames(st, names); err != nil {
				return err
			}
			st.pending = true
		}
	default:
		// A stale or unknown nonce: the client has not seen our latest response yet (xDS says to
		// ignore it); the reply to the latest will follow.
		c.s.log.Debug("mcp: request with stale nonce ignored", "client", c.id, "type", typeURL, "nonce", nonce)
		return nil
	}
	c.poke()
	return nil
}

// setNames replaces the resource names a SotW type asks for, within the stream's name budget.
func (c *conn) setNames(st *typeState, names []string) error {
	if err := c.addNameBytes(namesBytes(names) - namesBytes(st.names)); err != nil {
		return err
	}
	st.names = names
	return nil
}

func namesBytes(names []string) int {
	n := 0
	for _, s := range names {
		n += len(s)
	}
	return n
}

// requestedNames returns nil for a wildcard request (no names, or "*") and the sorted names
// otherwise.
func requestedNames(names []string) []string {
	if len(names) == 0 || slices.Contains(names, "*") {
		return nil
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	return slices.Compact(sorted)
}

// sendSotw sends the first type (in subscription order) that needs a response; on an Istiod
// stream, its fillers before anything else (istiodfill.go).
func (c *conn) sendSotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) (bool, time.Duration, error) {
	if c.s.view.Load() == nil {
		return false, 0, nil // nothing before the first Set
	}
	c.mu.Lock()
	if filler := c.nextFiller(); filler != nil {
		c.mu.Unlock()
		if err := stream.Send(filler); err != nil {
			return false, 0, err
		}
		c.s.m.istiodFillers.Inc()
		return true, 0, nil
	}
	now := time.Now()
	var retry time.Duration
	var st *typeState
	var snap *snapshot
	for _, t := range c.order {
		cand := c.types[t]
		cur := c.s.snapshotFor(cand.collection)
		if !cand.pending && cand.sentVersion == cur.version {
			continue
		}
		if wait, left := c.paced(cand, now); wait {
			if retry == 0 || left < retry {
				retry = left
			}
			continue
		}
		st, snap = cand, cur
		break
	}
	if st == nil {
		c.mu.Unlock()
		return false, retry, nil
	}
	var body []byte // nil: the snapshot's shared resources
	count := len(snap.entries)
	if st.names != nil {
		body, count = filteredBody(snap, st.names)
	}
	nonce := c.s.nextNonce()
	st.markSent(snap)
	var oldest time.Time // zero: an answer to a request, not a push
	if !st.pending {
		oldest = st.recordPush(c.s.m, metricCollection(snap), snap)
	}
	st.lastPush = !st.pending && st.sentSeq != 0
	st.sentSeq = snap.seq
	if st.lastPush {
		c.startDigest(now)
	}
	st.pending, st.outstanding = false, true
	st.sentVersion, st.sentNonce, st.sentAt, st.sentResources = snap.version, nonce, now, count
	st.responses++
	typeURL := st.typeURL
	c.mu.Unlock()

	msg := newWireResponse(snap, body, typeURL, nonce)
	start := time.Now()
	if err := stream.SendMsg(msg); err != nil {
		return false, 0, err
	}
	c.recordSend(snap, msg.size, start)
	c.recordChangeToSend(st, snap, nonce, oldest)
	if !msg.passedThrough {
		c.s.m.copies.Inc()
	}
	return true, 0, nil
}

func (c *conn) recordSend(snap *snapshot, size int, start time.Time) {
	collection := metricCollection(snap)
	c.s.m.sendDuration.WithLabelValues(c.protocol).Observe(time.Since(start).Seconds())
	if snap.collection != "" {
		c.s.m.pushLatency.WithLabelValues(collection).Observe(time.Since(snap.created).Seconds())
	}
	c.s.m.responses.WithLabelValues(collection, c.protocol).Inc()
	c.s.m.sentBytes.WithLabelValues(collection, c.protocol).Add(float64(size))
}

// recordChangeToSend observes, once a push is written, the time since the oldest change it
// carries (zero oldest: not a push).
func (c *conn) recordChangeToSend(st *typeState, snap *snapshot, nonce string, oldest time.Time) {
	if oldest.IsZero() {
		return
	}
	d := time.Since(oldest)
	c.s.m.changeToSend.WithLabelValues(metricCollection(snap)).Observe(d.Seconds())
	c.mu.Lock()
	if st.sentNonce == nonce {
		st.lastChangeToSend = d
	}
	c.mu.Unlock()
}

// filteredBody serves a client that asked for named resources (Istiod never does): the named
// entries' bytes, already marshalled, concatenated for this stream alone.
func filteredBody(snap *snapshot, names []string) ([]byte, int) {
	var picked []*entry
	for _, n := range names {
		if e := snap.lookup(n); e != nil {
			picked = append(picked, e)
		}
	}
	return concatWire(picked), len(picked) // never nil: an empty body is not the shared one
}
