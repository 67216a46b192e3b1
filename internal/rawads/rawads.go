// Package rawads is the receiving half of an ADS client for benchmarks and tests that reads a
// DiscoveryResponse's top-level fields (version, type URL, nonce) and counts its resources without
// decoding them. Decoding the resources is the consumer's cost (Istiod's, measured by the e2e
// scale harness), not the server's: a client that unmarshals them, or even copies a 30 MB
// response into one slice, makes a benchmark measure the client's decoding and garbage collection
// rather than the server and the transport.
package rawads

import (
	"fmt"
	"io"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Response is what Codec decodes a DiscoveryResponse into.
type Response struct {
	Size      int // encoded bytes
	Resources int // entries of the resources field, counted, not decoded
	Version   string
	TypeURL   string
	Nonce     string
}

// DiscoveryResponse field numbers (envoy/service/discovery/v3/discovery.proto).
const (
	fieldVersion   = 1
	fieldResources = 2
	fieldTypeURL   = 4
	fieldNonce     = 5
)

// Codec returns a gRPC codec, for grpc.ForceCodecV2, that decodes into a *Response and encodes and
// decodes everything else (the requests) as protobuf does.
func Codec() encoding.CodecV2 {
	return codec{next: encoding.GetCodecV2(protocodec.Name)}
}

type codec struct{ next encoding.CodecV2 }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.next.Marshal(v) }

// Name is protobuf's: on the wire the messages are protobuf, so the server must not see another
// content subtype.
func (c codec) Name() string { return protocodec.Name }

// Unmarshal streams through gRPC's receive buffers rather than materializing the response: only
// the three short strings are copied out.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*Response)
	if !ok {
		return c.next.Unmarshal(data, v)
	}
	*r = Response{Size: data.Len()}
	rd := data.Reader()
	defer rd.Close()
	// One discard buffer per response, not per skipped field: a 10k-resource response would
	// otherwise zero 32 KiB ten thousand times.
	var scratch [32 << 10]byte
	for rd.Remaining() > 0 {
		tag, err := readVarint(rd)
		if err != nil {
			return err
		}
		if err := r.field(rd, protowire.Number(tag>>3), protowire.Type(tag&7), scratch[:]); err != nil {
			return err
		}
	}
	return nil
}

// field reads or skips the value of field num, of wire type typ.
func (r *Response) field(rd *mem.Reader, num protowire.Number, typ protowire.Type, scratch []byte) error {
	var n uint64 // bytes to skip
	switch typ {
	case protowire.VarintType:
		_, err := readVarint(rd)
		return err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		var err error
		if n, err = readVarint(rd); err != nil {
			return err
		}
		var dst *string
		switch num {
		case fieldResources:
			r.Resources++
		case fieldVersion:
			dst = &r.Version
		case fieldTypeURL:
			dst = &r.TypeURL
		case fieldNonce:
			dst = &r.Nonce
		}
		if dst != nil {
			val := make([]byte, n)
			if _, err := io.ReadFull(rd, val); err != nil {
				return fmt.Errorf("reading field %d: %w", num, err)
			}
			*dst = string(val)
			return nil
		}
	default: // groups: a DiscoveryResponse has none
		return fmt.Errorf("unexpected wire type %d of field %d in a DiscoveryResponse", typ, num)
	}
	for n > 0 {
		m, err := rd.Read(scratch[:min(n, uint64(len(scratch)))])
		if err != nil {
			return fmt.Errorf("skipping field %d: %w", num, err)
		}
		n -= uint64(m)
	}
	return nil
}

func readVarint(rd *mem.Reader) (uint64, error) {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		b, err := rd.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("reading a varint: %w", err)
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("varint overflows 64 bits")
}
