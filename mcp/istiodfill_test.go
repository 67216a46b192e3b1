package mcp

import (
	"strconv"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestIstiodFill is mcp.fillIstiodBuffer: a stream recognised as Istiod's config-source client
// gets IstiodHeldResponses empty MeshConfig responses before any real one, and its ACKs of them
// are swallowed (no second MeshConfig answer, no ACK-duration sample, no lag); other clients,
// and Istiod with the option off, get none.
func TestIstiodFill(t *testing.T) {
	t.Parallel()
	withMeta := func(meta map[string]string) *core.Node {
		n := &core.Node{Id: "x", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{}}}
		for k, v := range meta {
			n.Metadata.Fields[k] = structpb.NewStringValue(v)
		}
		return n
	}
	istiodTypes := istio.TypeURLs(31) // MeshConfig first, as pkg/adsc asks
	for _, tc := range []struct {
		name    string
		off     bool
		node    *core.Node
		types   []string
		fillers int
	}{
		{name: "istiod", types: istiodTypes, fillers: IstiodHeldResponses},
		{name: "istiod with the option off", off: true, types: istiodTypes},
		{name: "client without GENERATOR", node: withMeta(map[string]string{"ISTIO_VERSION": "1.31.0"}), types: istiodTypes},
		{name: "another generator", node: withMeta(map[string]string{"GENERATOR": "grpc"}), types: istiodTypes},
		{name: "GENERATOR api not asking MeshConfig first", types: append(istio.PilotTypeURLs(31), istio.MeshConfigTypeURL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, Options{DisableIstiodFill: tc.off}, nil)
			cl := startAdsc(t, srv.addr, tc.types, adscOptions{node: tc.node})
			testkit.WaitUntil(t, 5*time.Second, "the client's requests recorded", func() bool {
				c := srv.Clients()
				return len(c) == 1 && len(c[0].Types) == len(tc.types)
			})
			if f, _, _ := cl.fillCounts(); f != 0 {
				t.Fatalf("%d fillers before the first Set; want none (nothing is sent before it)", f)
			}
			srv.Set(map[string][]*Resource{istio.CollectionServiceEntry: {serviceEntry("default", "a", 2, 0)}})
			for range tc.types {
				cl.next(5 * time.Second)
			}
			fillers, late, real := cl.fillCounts()
			if fillers != tc.fillers || late != 0 {
				t.Fatalf("%d fillers, %d of them after a real response; want %d, all before the first of %d real ones", fillers, late, tc.fillers, real)
			}
			cs := waitClient(t, srv, "every response ACKed", func(cs ClientStatus) bool {
				return synced(cs) && (cs.IstiodFill == nil || cs.IstiodFill.Acked == tc.fillers)
			})
			switch {
			case tc.fillers == 0 && cs.IstiodFill != nil:
				t.Errorf("/debug/clients istiodFill %+v; want none", *cs.IstiodFill)
			case tc.fillers > 0 && (cs.IstiodFill == nil || *cs.IstiodFill != FillStatus{Fillers: tc.fillers, Sent: tc.fillers, Acked: tc.fillers}):
				t.Errorf("/debug/clients istiodFill %+v; want %d sent and ACKed", cs.IstiodFill, tc.fillers)
			}
			for _, ty := range cs.Types {
				if ty.Responses != 1 {
					t.Errorf("type %s: %d responses; want 1 (filler ACKs are no new subscription)", ty.TypeURL, ty.Responses)
				}
			}
			cl.expectNone(200 * time.Millisecond)
			for name, want := range map[string]float64{
				"mcp_bridge_mcp_istiod_filled_streams_total": float64(min(tc.fillers, 1)),
				"mcp_bridge_mcp_istiod_fillers_total":        float64(tc.fillers),
				"mcp_bridge_mcp_istiod_filler_acks_total":    float64(tc.fillers),
				"mcp_bridge_mcp_responses_total":             float64(len(tc.types)),
			} {
				if got := gathered(t, srv, name); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if n := histogramCount(t, srv, "mcp_bridge_mcp_ack_duration_seconds"); n != uint64(len(tc.types)) {
				t.Errorf("ack_duration observations %d, want %d (real responses only)", n, len(tc.types))
			}
			if lag := ackLags(t, srv)[cs.ID]; lag != 0 {
				t.Errorf("ACK lag %v s; want 0", lag)
			}
		})
	}
}

// TestIstiodFillPacing: Istiod's replies to fillers are no ACK of a real response: with a
// ServiceEntry push unanswered, ACKing every filler does not release the next version; the
// ServiceEntry ACK that follows does.
func TestIstiodFillPacing(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{AckTimeout: time.Minute}, nil)
	srv.Set(seVersion(0))
	types := []string{istio.MeshConfigTypeURL, seV1}
	cl := startAdsc(t, srv.addr, types, adscOptions{noAck: true})
	byType := map[string]*discovery.DiscoveryResponse{}
	for range types {
		r := cl.next(5 * time.Second)
		byType[r.GetTypeUrl()] = r
	}
	if f, late, _ := cl.fillCounts(); f != IstiodHeldResponses || late != 0 {
		t.Fatalf("%d fillers (%d late); want %d first", f, late, IstiodHeldResponses)
	}
	ack := func(typeURL, nonce, version string) {
		cl.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResponseNonce: nonce, VersionInfo: version, Node: istiodNode()})
	}
	ack(istio.MeshConfigTypeURL, byType[istio.MeshConfigTypeURL].GetNonce(), byType[istio.MeshConfigTypeURL].GetVersionInfo())
	se := byType[seV1]
	ack(seV1, se.GetNonce(), se.GetVersionInfo())
	srv.Set(seVersion(1))
	push := cl.nextFor(seV1, 5*time.Second) // a push: the next one waits for its ACK
	srv.Set(seVersion(2))
	for i := range IstiodHeldResponses { // the fillers' replies arrive late, as they might
		ack(istio.MeshConfigTypeURL, fillNoncePrefix+strconv.Itoa(i), "")
	}
	cl.expectNone(300 * time.Millisecond)
	cs := waitClient(t, srv, "the filler replies counted", func(cs ClientStatus) bool {
		return cs.IstiodFill != nil && cs.IstiodFill.Acked == IstiodHeldResponses
	})
	for _, ty := range cs.Types {
		if ty.TypeURL == seV1 && !ty.WaitingForAck {
			t.Errorf("ServiceEntry %+v; want still waiting for the ACK of version 1's push", ty)
		}
	}
	ack(seV1, push.GetNonce(), push.GetVersionInfo())
	if r := cl.nextFor(seV1, 5*time.Second); r.GetVersionInfo() != srv.snapshotFor(istio.CollectionServiceEntry).version {
		t.Errorf("after the ACK: version %s, want the latest", r.GetVersionInfo())
	}
	if n := histogramCount(t, srv, "mcp_bridge_mcp_ack_duration_seconds"); n != 3 {
		t.Errorf("ack_duration observations %d, want 3 (MeshConfig, ServiceEntry answer and push)", n)
	}
}

// waitClient waits until the server's only client satisfies ok and returns it.
func waitClient(t *testing.T, srv *testServer, what string, ok func(ClientStatus) bool) ClientStatus {
	t.Helper()
	var cs ClientStatus
	testkit.WaitUntil(t, 5*time.Second, what, func() bool {
		c := srv.Clients()
		if len(c) != 1 {
			return false
		}
		cs = c[0]
		return ok(cs)
	})
	return cs
}

func synced(cs ClientStatus) bool {
	for _, ty := range cs.Types {
		if !ty.Synced {
			return false
		}
	}
	return len(cs.Types) > 0
}
