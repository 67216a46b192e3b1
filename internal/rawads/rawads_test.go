package rawads

import (
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The codec reads what the proto decoder would, across buffer boundaries and with resources
// larger than its discard buffer, and leaves requests to protobuf.
func TestCodec(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	resp := &discovery.DiscoveryResponse{
		VersionInfo: "v7", TypeUrl: "networking.istio.io/v1/ServiceEntry", Nonce: "n-3", Canary: true,
		Resources: []*anypb.Any{{TypeUrl: "t", Value: []byte(big)}, {TypeUrl: "t"}, {TypeUrl: "t", Value: []byte("y")}},
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var data mem.BufferSlice // split into 1000-byte buffers, as gRPC hands over received frames
	for len(b) > 0 {
		n := min(len(b), 1000)
		data = append(data, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	var got Response
	if err := Codec().Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := Response{Size: proto.Size(resp), Resources: 3, Version: "v7", TypeURL: resp.TypeUrl, Nonce: "n-3"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	req := &discovery.DiscoveryRequest{TypeUrl: "t", VersionInfo: "v7", ResponseNonce: "n-3"}
	enc, err := Codec().Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back discovery.DiscoveryRequest
	if err := Codec().Unmarshal(enc, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(req, &back) {
		t.Fatalf("request round trip: got %v, want %v", &back, req)
	}
}
