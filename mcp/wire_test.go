package mcp

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// rawMsg receives a response's bytes exactly as they came off the wire.
type rawMsg struct{ b []byte }

// rawRecvCodec is grpc's proto codec, except that a *rawMsg gets the undecoded message bytes.
type rawRecvCodec struct{ next encoding.CodecV2 }

func (c rawRecvCodec) Marshal(v any) (mem.BufferSlice, error) { return c.next.Marshal(v) }
func (c rawRecvCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMsg); ok {
		m.b = data.Materialize()
		return nil
	}
	return c.next.Unmarshal(data, v)
}
func (c rawRecvCodec) Name() string { return protocodec.Name }

// TestWireBytesEqualMarshal: the bytes a SotW client receives (the envelope's head, the caller's
// body bytes sent in place, the response assembled from the entries' buffers) are exactly
// proto.Marshal (deterministic) of the DiscoveryResponse built with the generated types, and each
// entry's envelope (Delta's Any value) is proto.Marshal of its istio.mcp.v1alpha1.Resource.
func TestWireBytesEqualMarshal(t *testing.T) {
	t.Parallel()
	const typeURL = "wire.test.io/v1/Thing"
	collection := CollectionOf(typeURL)
	many := make([]*Resource, 0, 3000) // a dozen chunks
	for i := range 3000 {
		many = append(many, workloadEntry("ns", fmt.Sprintf("we-%05d", i), i, 0))
	}
	// Each edge twice: a body under inlineBodyBytes (copied into the entry) and one over (shared).
	var edges []*Resource
	for _, n := range []int{1, 20} {
		sfx := fmt.Sprint("-", n)
		unknownBody := serviceEntry("default", "unknown-fields"+sfx, n, 0)
		unknownBody.Body.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
		noVersion := serviceEntry("default", "no-version"+sfx, n, 0)
		noVersion.Version = ""
		noTypeURL := serviceEntry("default", "no-type-url"+sfx, n, 0)
		noTypeURL.Body.TypeUrl = ""
		edges = append(edges, unknownBody, noVersion, noTypeURL)
	}
	if len(edges[0].Body.Value) > inlineBodyBytes || len(edges[3].Body.Value) <= inlineBodyBytes {
		t.Fatalf("edge bodies of %d and %d bytes do not straddle inlineBodyBytes", len(edges[0].Body.Value), len(edges[3].Body.Value))
	}
	edges = append(edges, &Resource{Namespace: "default", Name: "empty-value", Version: "1",
		Body: &anypb.Any{TypeUrl: "type.googleapis.com/istio.networking.v1alpha3.ServiceEntry"}},
		&Resource{Namespace: "default", Name: "empty-any", Version: "1", Body: &anypb.Any{}})
	annotated := serviceEntry("default", "annotated", 3, 0)
	annotated.Annotations = map[string]string{"mcp-bridge.io/registry": "nacos-prod", "b": "2", "a": "1"}

	for _, tc := range []struct {
		name  string
		rs    []*Resource
		names []string // a client that names the resources it wants
	}{
		{name: "empty collection", rs: []*Resource{}},
		{name: "one", rs: []*Resource{serviceEntry("default", "reviews", 2, 0)}},
		{name: "labels and annotations", rs: []*Resource{annotated}},
		{name: "edge bodies", rs: edges},
		{name: "large body", rs: []*Resource{serviceEntry("default", "big", 20000, 0)}},
		{name: "many", rs: many},
		{name: "named", rs: many[:600], names: []string{"ns/we-00599", "ns/we-00007", "ns/missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Options{}, nil)
			srv.Set(map[string][]*Resource{collection: tc.rs})
			got := receiveRaw(t, srv.addr, typeURL, tc.names)

			var resp discovery.DiscoveryResponse
			if err := proto.Unmarshal(got, &resp); err != nil {
				t.Fatalf("received bytes do not decode: %v", err)
			}
			want := &discovery.DiscoveryResponse{VersionInfo: resp.VersionInfo, TypeUrl: typeURL, Nonce: resp.Nonce}
			snap := srv.snapshotFor(collection)
			for _, r := range sortedResources(tc.rs) {
				key := r.Namespace + "/" + r.Name
				if tc.names != nil && !slices.Contains(tc.names, key) {
					continue
				}
				env := envelopeBytes(t, r)
				if e := snap.lookup(key); e == nil || !bytes.Equal(e.envelope(), env) {
					t.Errorf("%s: entry envelope differs from proto.Marshal", key)
				}
				want.Resources = append(want.Resources, &anypb.Any{TypeUrl: istio.MCPResourceTypeURL, Value: env})
			}
			wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantBytes) {
				t.Fatalf("received %d bytes, proto.Marshal gives %d; first difference at %d", len(got), len(wantBytes), firstDiff(got, wantBytes))
			}
			if len(want.Resources) == 0 && tc.names == nil && len(tc.rs) != 0 {
				t.Fatal("the case served nothing")
			}
		})
	}
}

// receiveRaw opens a SotW stream for typeURL and returns the first response's wire bytes.
func receiveRaw(t *testing.T, addr, typeURL string, names []string) []byte {
	t.Helper()
	cc := dial(t, addr, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawRecvCodec{next: encoding.GetCodecV2(protocodec.Name)})))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
	if err != nil {
		t.Fatal(err)
	}
	req := &discovery.DiscoveryRequest{TypeUrl: typeURL, Node: &core.Node{Id: "wire-test"}, ResourceNames: names}
	if err := stream.SendMsg(req); err != nil {
		t.Fatal(err)
	}
	var m rawMsg
	if err := stream.RecvMsg(&m); err != nil {
		t.Fatalf("no response: %v", err)
	}
	return m.b
}

// envelopeBytes is the plain proto encoding of r's envelope.
func envelopeBytes(t *testing.T, r *Resource) []byte {
	t.Helper()
	env, err := proto.MarshalOptions{Deterministic: true}.Marshal(&mcpapi.Resource{
		Metadata: &mcpapi.Metadata{Name: r.Namespace + "/" + r.Name, Version: r.Version, Labels: r.Labels, Annotations: r.Annotations},
		Body:     r.Body,
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
