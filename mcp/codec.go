package mcp

import (
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// ServerOptions are the gRPC server options the MCP server needs, for the default Limits; see
// ServerOptionsFor.
func ServerOptions() []grpc.ServerOption { return ServerOptionsFor(Limits{}) }

// ServerOptionsFor are the gRPC server options the MCP server needs; pass them to grpc.NewServer
// with the Limits given to the Server (Options.Limits).
//
//   - Keepalive enforcement that accepts Istiod's pings: Istiod pings every 30 s (its
//     GRPC_KEEPALIVE_INTERVAL), and grpc-go's default policy (MinTime 5 min, no pings without a
//     stream) counts each ping on an idle connection as a strike and sends GOAWAY
//     "too_many_pings" after the third, dropping Istiod's config stream every few minutes.
//   - Server pings after 30 s of silence so a vanished Istiod is noticed and its stream freed.
//   - A receive limit of Limits.MaxRecvMessageBytes (default 4 MiB): gRPC checks a request's
//     length before reading it, so a larger one costs nothing. Responses are not limited
//     (Istiod accepts up to 2 GiB).
//   - A codec that writes the server's pre-encoded responses as they are. Without it the server
//     still works, but each response is copied once more per client (see mcp_response_copies_total).
func ServerOptionsFor(l Limits) []grpc.ServerOption {
	l = l.WithDefaults()
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxRecvMsgSize(l.MaxRecvMessageBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ForceServerCodecV2(passthroughCodec{next: encoding.GetCodecV2(protocodec.Name)}),
	}
}

// passthroughCodec is grpc's proto codec, except that a *wireResponse is written as its
// pre-encoded parts without copying or re-encoding. The parts are immutable and shared by every
// stream; gRPC's Free on a SliceBuffer is a no-op, so nothing is recycled under another stream.
type passthroughCodec struct{ next encoding.CodecV2 }

func (c passthroughCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		w.passedThrough = true
		// One list per send (gRPC's reader consumes it), of references: the bytes are not copied.
		out := make(mem.BufferSlice, 0, w.parts+2)
		out = append(out, mem.SliceBuffer(w.header))
		for _, c := range w.body {
			out = append(out, c...)
		}
		return append(out, mem.SliceBuffer(w.trailer)), nil
	}
	return c.next.Marshal(v)
}

func (c passthroughCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return c.next.Unmarshal(data, v)
}
func (c passthroughCodec) Name() string { return protocodec.Name }

// wireResponse is a DiscoveryResponse already in wire form, in parts: the version_info field and
// the resources shared by every client, then this response's own type_url and nonce.
//
// It is also a proto.Message (an Empty whose unknown fields are those bytes), so a grpc.Server
// built without ServerOptions' codec still sends the right bytes, at the cost of a copy.
type wireResponse struct {
	header        []byte
	body          [][]mem.Buffer // the resources, shared: the snapshot's chunks' parts
	parts         int            // buffers in body
	trailer       []byte
	size          int
	passedThrough bool
	fallback      *emptypb.Empty
}

// newWireResponse builds a response from a snapshot's shared parts; body, when not nil, replaces
// the snapshot's resources (a client that named the resources it wants).
func newWireResponse(s *snapshot, body []byte, typeURL, nonce string) *wireResponse {
	trailer := make([]byte, 0, 4+len(typeURL)+len(nonce)+4)
	trailer = protowire.AppendString(protowire.AppendTag(trailer, 4, protowire.BytesType), typeURL)
	trailer = protowire.AppendString(protowire.AppendTag(trailer, 5, protowire.BytesType), nonce)
	w := &wireResponse{header: s.header, body: s.body, parts: s.parts, trailer: trailer, size: s.size}
	if body != nil {
		w.body, w.parts, w.size = [][]mem.Buffer{{mem.SliceBuffer(body)}}, 1, len(body)
	}
	w.size += len(w.header) + len(w.trailer)
	return w
}

// bytes returns the whole response in one slice.
func (w *wireResponse) bytes() []byte {
	raw := make([]byte, 0, w.size)
	raw = append(raw, w.header...)
	for _, c := range w.body {
		for _, b := range c {
			raw = append(raw, b.ReadOnlyData()...)
		}
	}
	return append(raw, w.trailer...)
}

// ProtoReflect is only called when the grpc.Server uses the plain proto codec.
func (w *wireResponse) ProtoReflect() protoreflect.Message {
	if w.fallback == nil {
		w.fallback = &emptypb.Empty{}
		w.fallback.ProtoReflect().SetUnknown(w.bytes())
	}
	return w.fallback.ProtoReflect()
}
