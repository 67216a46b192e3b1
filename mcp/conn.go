package mcp

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
)

// ClientStatus is one open stream, for /debug/clients (JSON) and the mcp_client_* metrics.
type ClientStatus struct {
	ID             string            `json:"id"`
	Peer           string            `json:"peer"`
	Protocol       string            `json:"protocol"` // "sotw" or "delta"
	NodeID         string            `json:"nodeId"`
	Metadata       map[string]string `json:"metadata,omitempty"` // identifying node metadata only
	ConnectedSince time.Time         `json:"connectedSince"`
	Types          []TypeStatus      `json:"types"`
	Pacing         PacingStatus      `json:"pacing"`
	// IstiodFill is set on a stream recognised as Istiod's config-source client while
	// mcp.fillIstiodBuffer is on: the empty responses sent before the first real one.
	IstiodFill *FillStatus `json:"istiodFill,omitempty"`
}

// PacingStatus is how a stream paces newer versions (mcp.pacing).
type PacingStatus struct {
	Mode PacingMode `json:"mode"`
	// Signal is what the stream waits for now: "digest" (Istiod's push context), or "ack" (mode
	// ack, or the digest signal could not be read recently).
	Signal           string    `json:"signal"`
	WaitingForDigest bool      `json:"waitingForDigest"`
	WaitingSince     time.Time `json:"waitingSince,omitzero"`
	Waits            int       `json:"waits"`    // digest waits ended
	Timeouts         int       `json:"timeouts"` // of which ended by maxWait
	Failures         int       `json:"failures"` // of which ended because the signal could not be read
	// LastWaitSeconds and TotalWaitSeconds: time spent waiting for the digest signal.
	LastWaitSeconds  float64 `json:"lastWaitSeconds"`
	TotalWaitSeconds float64 `json:"totalWaitSeconds"`
}

// TypeStatus is one subscribed type URL of a stream.
type TypeStatus struct {
	TypeURL        string    `json:"typeUrl"`
	Collection     string    `json:"collection"`
	CurrentVersion string    `json:"currentVersion,omitempty"` // of the collection; "" before the first Set
	SentVersion    string    `json:"sentVersion,omitempty"`
	SentNonce      string    `json:"sentNonce,omitempty"`
	SentAt         time.Time `json:"sentAt,omitzero"`
	SentResources  int       `json:"sentResources"` // in the last response
	Responses      int       `json:"responses"`     // sent on this stream
	AckedVersion   string    `json:"ackedVersion,omitempty"`
	AckedNonce     string    `json:"ackedNonce,omitempty"`
	AckedAt        time.Time `json:"ackedAt,omitzero"`
	Synced         bool      `json:"synced"` // the client ACKed the current version
	// BehindSince is, while the client has not ACKed the current version, since when it has
	// been behind: when Set made that version, or when the stream opened if that was later. It
	// is what mcp_bridge_mcp_client_ack_lag_seconds measures from. Zero when synced.
	BehindSince   time.Time `json:"behindSince,omitzero"`
	WaitingForAck bool      `json:"waitingForAck"` // a response is unanswered
	Nacked        bool      `json:"nacked"`        // the last reply was a NACK
	Nacks         int       `json:"nacks"`
	LastNack      *NackInfo `json:"lastNack,omitempty"`
	// PushesCoalesced counts versions of the collection this stream never sent because a newer
	// one replaced them while it waited (for an ACK or Istiod's digest).
	PushesCoalesced int `json:"pushesCoalesced"`
	// LastChangeToSendSeconds is, for the last push, the time from the oldest registry change it
	// carried reaching the bridge to the response being written to the stream.
	LastChangeToSendSeconds float64 `json:"lastChangeToSendSeconds,omitempty"`
}

// NackInfo is the detail of a rejected response.
type NackInfo struct {
	Version string    `json:"version,omitempty"`
	Nonce   string    `json:"nonce"`
	Code    int32     `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// debugFieldBytes bounds each client-chosen string on /debug/clients and in metric labels.
const debugFieldBytes = 256

// nodeMetadataKeys are the node metadata fields shown in ClientStatus: enough to tell clients
// apart, nothing that could carry a secret.
var nodeMetadataKeys = []string{"GENERATOR", "ISTIO_VERSION", "ISTIO_REVISION", "CLUSTER_ID", "NAMESPACE", "POD_NAME"}

// conn is the state of one stream. Its handler goroutine sends; a second goroutine receives
// requests and updates typeStates under mu, then pokes the sender.
type conn struct {
	s         *Server
	id        string
	seq       uint64 // orders streams connected at the same instant
	peer      string
	protocol  string
	connected time.Time
	wake      chan struct{} // capacity 1: coalesces any number of pokes
	recvErr   chan error    // capacity 1: the receiver's last word
	stalled   chan struct{} // closed when a send outlasts Limits.SendTimeout
	stallOnce sync.Once

	// nodeID is set once under mu, and read without it by the stream's end and limit logs, which
	// run while the request reader may still be recording it.
	nodeID atomic.Pointer[string]
	mu     sync.Mutex
	meta   map[string]string
	types  map[string]*typeState
	order  []string // type URLs in subscription order: responses go out in that order
	// nameBytes is what the client's resource names (and Delta initial versions) kept by this
	// stream add up to, bounded by Limits.MaxResourceNameBytesPerStream.
	nameBytes int
	ctx       context.Context // the stream's
	digest    digestState     // under mu
	fill      fillState       // under mu
}

// typeState is what one stream knows about one type URL.
type typeState struct {
	typeURL, collection string

	// Requests.
	names   []string // SotW resource_names; nil means wildcard (what Istiod sends)
	pending bool     // the client asked and is answered even if the version is unchanged

	// Responses.
	sentVersion, sentNonce string
	sentAt                 time.Time
	sentResources          int
	responses              int
	outstanding            bool // sent and neither ACKed nor NACKed yet
	// sentSeq is the collection sequence number (snapshot.seq) of the last response; lastPush
	// says it was a push of a newer version, not the answer to a request.
	sentSeq          uint64
	lastPush         bool
	coalesced        int
	lastChangeToSend time.Duration
	// unackedSince is when Set made the oldest version sent and not answered yet: a response
	// sent past the ACK timeout on top of an unanswered one keeps it, so a client that never
	// ACKs shows a lag that keeps growing.
	unackedSince time.Time

	// Replies.
	ackVersion, ackNonce string
	ackAt                time.Time
	nacked               bool
	nacks                int
	lastNack             *NackInfo

	// Delta only.
	wildcard   bool
	subscribed map[string]struct{}
	known      map[string]string // resource name -> version the client has
	knownAt    string            // collection version `known` equals, "" when unknown
}

func newConn(s *Server, ctx context.Context, protocol string) *conn {
	c := &conn{
		s:         s,
		ctx:       ctx,
		protocol:  protocol,
		connected: time.Now(),
		wake:      make(chan struct{}, 1),
		recvErr:   make(chan error, 1),
		stalled:   make(chan struct{}),
		types:     map[string]*typeState{},
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		c.peer = p.Addr.String()
	}
	c.seq = s.ids.Add(1)
	c.id = fmt.Sprintf("%s-%d", protocol, c.seq)
	return c
}

func (c *conn) stall() { c.stallOnce.Do(func() { close(c.stalled) }) }

func (c *conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// typeFor returns the state of a type URL, creating it for a first request. Callers hold mu.
func (c *conn) typeFor(typeURL string) (st *typeState, first bool, err error) {
	if st := c.types[typeURL]; st != nil {
		return st, false, nil
	}
	l := c.s.limits
	if len(typeURL) > l.MaxTypeURLBytes {
		return nil, false, c.s.reject(c, limitTypeURL, codes.InvalidArgument,
			"type_url of %d bytes is longer than %d", len(typeURL), l.MaxTypeURLBytes)
	}
	if len(c.types) >= l.MaxTypesPerStream {
		return nil, false, c.s.reject(c, limitTypes, codes.ResourceExhausted,
			"stream subscribes to more than %d type URLs", l.MaxTypesPerStream)
	}
	st = &typeState{typeURL: typeURL, collection: CollectionOf(typeURL)}
	c.types[typeURL] = st
	c.order = append(c.order, typeURL)
	return st, true, nil
}

// markSent records that snap goes out on this type; call before setting outstanding.
func (st *typeState) markSent(snap *snapshot) {
	if !st.outstanding {
		st.unackedSince = snap.created
	}
}

// addNameBytes accounts for n more bytes of client-chosen resource names kept by the stream
// (n < 0 releases them), refusing the request that would go over the limit. Callers hold mu.
func (c *conn) addNameBytes(n int) error {
	if n > 0 && c.nameBytes+n > c.s.limits.MaxResourceNameBytesPerStream {
		return c.s.reject(c, limitResourceNames, codes.ResourceExhausted,
			"resource names of %d bytes on top of %d kept would exceed %d", n, c.nameBytes, c.s.limits.MaxResourceNameBytesPerStream)
	}
	c.nameBytes += n
	return nil
}

// recordNode keeps the node identity; xDS clients send it on the first request at least.
// Callers hold mu.
func (c *conn) recordNode(n *core.Node) error {
	if n == nil || c.node() != "" {
		return nil
	}
	if len(n.GetId()) > c.s.limits.MaxNodeIDBytes {
		return c.s.reject(c, limitNodeID, codes.InvalidArgument,
			"node.id of %d bytes is longer than %d", len(n.GetId()), c.s.limits.MaxNodeIDBytes)
	}
	id := n.GetId()
	c.nodeID.Store(&id)
	for _, k := range nodeMetadataKeys {
		if v, ok := n.GetMetadata().GetFields()[k]; ok && v.GetStringValue() != "" {
			if c.meta == nil {
				c.meta = map[string]string{}
			}
			c.meta[k] = truncate(v.GetStringValue(), c.s.limits.MaxDetailBytes)
		}
	}
	return nil
}

// recordReply handles a request answering this stream's last response of the type. The
// client's text is kept truncated, and NACKs are logged rate-limited: a client NACKing in a
// loop must not flood the log.
func (c *conn) recordReply(st *typeState, version, nonce string, errDetail *rpcstatus.Status) {
	if st.outstanding && !st.sentAt.IsZero() {
		c.s.m.ackDuration.WithLabelValues(c.metricCollection(st)).Observe(time.Since(st.sentAt).Seconds())
	}
	st.outstanding = false
	version = truncate(version, c.s.limits.MaxDetailBytes)
	if errDetail != nil {
		msg := truncate(errDetail.GetMessage(), c.s.limits.MaxDetailBytes)
		st.nacked = true
		st.nacks++
		st.lastNack = &NackInfo{Version: version, Nonce: nonce, Code: errDetail.GetCode(), Message: msg, At: time.Now()}
		c.s.m.nacks.WithLabelValues(c.metricCollection(st)).Inc()
		c.s.logs.warn("nack", "mcp: client rejected a response (see /debug/clients and mcp_bridge_mcp_nacks_total)",
			"client", c.id, "node", truncate(c.node(), logFieldBytes), "type", st.typeURL,
			"nonce", nonce, "code", errDetail.GetCode(), "message", truncate(msg, logFieldBytes))
		return
	}
	st.nacked = false
	st.ackVersion, st.ackNonce, st.ackAt = version, nonce, time.Now()
}

func (c *conn) metricCollection(st *typeState) string {
	if snap := c.s.snapshotFor(st.collection); snap != nil {
		return metricCollection(snap)
	}
	return unsetCollection
}

// loop is the sender: it waits for pokes (new requests, Set, shutdown) and calls next, which
// sends at most one response and reports when it wants to be called again.
func (c *conn) loop(ctx context.Context, next func() (sent bool, retryIn time.Duration, err error)) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		retry := time.Duration(0)
		for {
			sent, retryIn, err := next()
			if err != nil {
				return err
			}
			if !sent {
				retry = retryIn
				break
			}
		}
		timer.Stop()
		if retry > 0 {
			timer.Reset(retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.s.stop:
			return nil
		case err := <-c.recvErr:
			return err
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// waitingForAck reports whether st must not be sent yet because its last response is unanswered,
// and if so how long until the ACK timeout lets it through.
func (c *conn) waitingForAck(st *typeState, now time.Time) (bool, time.Duration) {
	if !st.outstanding {
		return false, 0
	}
	left := c.s.ackTimeout - now.Sub(st.sentAt)
	if left <= 0 {
		c.s.logs.warn("ack-timeout", "mcp: client did not ACK in time; sending the newer version anyway", "client", c.id,
			"node", truncate(c.node(), logFieldBytes), "type", st.typeURL, "nonce", st.sentNonce)
		return false, 0
	}
	return true, left
}

// node is the client's node id, "" until its first request carrying one.
func (c *conn) node() string {
	if id := c.nodeID.Load(); id != nil {
		return *id
	}
	return ""
}

func (c *conn) status() ClientStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Every client-chosen string is cut to a few hundred bytes, whatever the limits allow.
	short := func(v string) string { return truncate(v, debugFieldBytes) }
	cs := ClientStatus{ID: c.id, Peer: short(c.peer), Protocol: c.protocol, NodeID: short(c.node()), ConnectedSince: c.connected}
	if len(c.meta) > 0 {
		cs.Metadata = make(map[string]string, len(c.meta))
		for k, v := range c.meta {
			cs.Metadata[k] = short(v)
		}
	}
	for _, t := range c.order {
		st := c.types[t]
		ts := TypeStatus{
			TypeURL: short(st.typeURL), Collection: st.collection,
			SentVersion: st.sentVersion, SentNonce: st.sentNonce, SentAt: st.sentAt,
			SentResources: st.sentResources, Responses: st.responses,
			AckedVersion: short(st.ackVersion), AckedNonce: st.ackNonce, AckedAt: st.ackAt,
			WaitingForAck: st.outstanding, Nacked: st.nacked, Nacks: st.nacks,
			PushesCoalesced: st.coalesced, LastChangeToSendSeconds: st.lastChangeToSend.Seconds(),
		}
		if st.lastNack != nil {
			n := *st.lastNack
			n.Version, n.Message = short(n.Version), truncate(n.Message, 4*debugFieldBytes)
			ts.LastNack = &n
		}
		if snap := c.s.snapshotFor(st.collection); snap != nil {
			ts.CurrentVersion = snap.version
			ts.Synced = st.ackNonce != "" && st.ackNonce == st.sentNonce && st.sentVersion == snap.version
			if !ts.Synced {
				// Behind since the oldest version it has not answered, or, all answered, since
				// the current version exists; never before the stream opened.
				ts.BehindSince = snap.created
				if st.outstanding {
					ts.BehindSince = st.unackedSince
				}
				if c.connected.After(ts.BehindSince) {
					ts.BehindSince = c.connected
				}
			}
		}
		cs.Types = append(cs.Types, ts)
	}
	sort.SliceStable(cs.Types, func(i, j int) bool { return cs.Types[i].TypeURL < cs.Types[j].TypeURL })
	cs.Pacing = c.pacingStatus()
	cs.IstiodFill = c.fillStatus()
	return cs
}
