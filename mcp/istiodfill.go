package mcp

import (
	"strconv"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// IstiodHeldResponses is how many responses Istiod's config-source client keeps for its whole
// life: pkg/adsc's handleRecv ends every response it has handled and ACKed with a non-blocking
// send into ADSC.XDSUpdates, a channel of capacity 100 that nothing in Istiod reads. So the
// first 100 responses of each xds:// source stay in Istiod's heap, whole, until it restarts
// (docs/scale.md, "Istiod memory under MCP pushes").
//
// The server therefore sends an Istiod config-source stream this many empty MeshConfig responses
// ("fillers") before its first real response: they take the 100 slots, and every real response
// becomes garbage once Istiod has applied it. An empty MeshConfig response is the one response
// that changes nothing in Istiod: pkg/adsc applies a MeshConfig response only when it holds a
// resource, and MeshConfig is no config-store kind, so it is only ACKed and offered to the
// channel. (An empty response of a store kind would delete that kind's objects.) A reconnecting
// Istiod has its channel full already: the fillers then cost 100 tiny round trips and nothing
// else. Delta streams get none: Istiod's config sources speak state of the world only.
const IstiodHeldResponses = 100

// fillNoncePrefix starts the nonces of fillers. Real responses' nonces are hexadecimal numbers
// (Server.nextNonce), so the two never collide.
const fillNoncePrefix = "fill-"

// istiodGenerator is the node metadata GENERATOR Istiod's config-source client sends
// (pilot/pkg/bootstrap/configcontroller.go: adsc.Config{Meta: model.NodeMetadata{Generator:
// "api"}}). Envoy sidecars and gateways do not talk to the bridge; other MCP clients (grpcurl,
// debugging tools, tests) do not send it.
const istiodGenerator = "api"

// FillStatus is, on /debug/clients, the fillers of a stream recognised as Istiod's config-source
// client (mcp.fillIstiodBuffer).
type FillStatus struct {
	Fillers int `json:"fillers"` // to send: IstiodHeldResponses
	Sent    int `json:"sent"`
	Acked   int `json:"acked"` // Istiod's ACKs of them, swallowed
}

// fillState is a stream's fillers. Guarded by conn.mu.
type fillState struct {
	decided bool // the stream's first request has been seen
	want    int  // fillers to send: 0 unless the stream is Istiod's and filling is on
	sent    int
	acks    int
}

// decideFill looks at the stream's first request (node recorded, type URL set): it fills when
// filling is on and the client is Istiod's config-source client, which sends its node with
// metadata GENERATOR "api" and subscribes to MeshConfig first (pkg/adsc ConfigInitialRequests).
// Asking that MeshConfig come first means the client asked for the type the fillers carry, and
// that nothing has been answered yet: the fillers come before any real response. Callers hold
// c.mu.
func (c *conn) decideFill(typeURL string) {
	if c.fill.decided {
		return
	}
	c.fill.decided = true
	if c.s.fillIstiod && typeURL == istio.MeshConfigTypeURL && c.meta["GENERATOR"] == istiodGenerator {
		c.fill.want = IstiodHeldResponses
		c.s.m.istiodFilled.Inc()
		c.s.log.Debug("mcp: Istiod config-source client; sending empty MeshConfig responses first", "client", c.id,
			"fillers", c.fill.want, "node", truncate(c.node(), logFieldBytes))
	}
}

// fillerAck reports whether a request is Istiod's ACK (or NACK) of one of the fillers this
// stream sent, and counts it. Such a request is no subscription and no reply to a real
// response: it must not touch the type's state, pacing or ACK metrics. Callers hold c.mu.
func (c *conn) fillerAck(typeURL, nonce string) bool {
	if c.fill.sent == 0 || typeURL != istio.MeshConfigTypeURL {
		return false
	}
	n, ok := strings.CutPrefix(nonce, fillNoncePrefix)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i >= c.fill.sent {
		return false
	}
	c.fill.acks++
	c.s.m.istiodFillerAcks.Inc()
	return true
}

// nextFiller returns the next filler to send, or nil when none is due. Callers hold c.mu.
func (c *conn) nextFiller() *discovery.DiscoveryResponse {
	if c.fill.sent >= c.fill.want {
		return nil
	}
	nonce := fillNoncePrefix + strconv.Itoa(c.fill.sent)
	c.fill.sent++
	// No version_info: Istiod records it for MeshConfig and echoes it in the ACK; the real
	// (empty) MeshConfig response that follows the fillers sets it again.
	return &discovery.DiscoveryResponse{TypeUrl: istio.MeshConfigTypeURL, Nonce: nonce}
}

// fillStatus is the stream's fillers for ClientStatus, nil when it gets none. Callers hold c.mu.
func (c *conn) fillStatus() *FillStatus {
	if c.fill.want == 0 {
		return nil
	}
	return &FillStatus{Fillers: c.fill.want, Sent: c.fill.sent, Acked: c.fill.acks}
}
