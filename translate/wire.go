package translate

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Marshalling is most of the cost of a full translate, and most of that is protobuf-go sorting map
// keys by reflection for deterministic output. Endpoints are simple messages, so they are encoded
// here directly, once per instance, and a ServiceEntry's body is its other fields followed by the
// endpoints' bytes. The result is byte for byte what proto.MarshalOptions{Deterministic: true}
// produces (fields in number order, map entries sorted by key with key and value always written,
// proto3 zero values omitted); the tests compare the two on every resource they emit.

// Field numbers from istio.io/api networking/v1alpha3.
const (
	fieldSEEndpoints = 6 // ServiceEntry.endpoints; fields 7-9 are never set together with it

	fieldWEAddress        = 1
	fieldWEPorts          = 2
	fieldWELabels         = 3
	fieldWENetwork        = 4
	fieldWELocality       = 5
	fieldWEWeight         = 6
	fieldWEServiceAccount = 7
)

// encodeWorkloadEntry returns the deterministic encoding of a WorkloadEntry.
func encodeWorkloadEntry(we *networking.WorkloadEntry) ([]byte, error) {
	for _, s := range []string{we.Address, we.Network, we.Locality, we.ServiceAccount} {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("string field %q is not valid UTF-8", s)
		}
	}
	b := make([]byte, 0, 64+32*len(we.Labels)+16*len(we.Ports))
	b = appendString(b, fieldWEAddress, we.Address)
	if len(we.Ports) > 0 {
		keys := sortedKeys(we.Ports)
		for _, k := range keys {
			v := we.Ports[k]
			n := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(v))
			b = protowire.AppendTag(b, fieldWEPorts, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(n))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	if len(we.Labels) > 0 {
		keys := sortedKeys(we.Labels)
		for _, k := range keys {
			v := we.Labels[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("label %q=%q is not valid UTF-8", k, v)
			}
			n := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
			b = protowire.AppendTag(b, fieldWELabels, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(n))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	b = appendString(b, fieldWENetwork, we.Network)
	b = appendString(b, fieldWELocality, we.Locality)
	if we.Weight != 0 {
		b = protowire.AppendTag(b, fieldWEWeight, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(we.Weight))
	}
	b = appendString(b, fieldWEServiceAccount, we.ServiceAccount)
	return b, nil
}

// encodeServiceEntry returns the deterministic encoding of se, whose endpoints are given already
// encoded (in order) in endpoints; se.Endpoints itself is ignored.
func encodeServiceEntry(se *networking.ServiceEntry, endpoints [][]byte) ([]byte, error) {
	head := &networking.ServiceEntry{Hosts: se.Hosts, Addresses: se.Addresses, Ports: se.Ports, Location: se.Location,
		Resolution: se.Resolution, WorkloadSelector: se.WorkloadSelector, ExportTo: se.ExportTo, SubjectAltNames: se.SubjectAltNames}
	size := 0
	for _, e := range endpoints {
		size += protowire.SizeTag(fieldSEEndpoints) + protowire.SizeBytes(len(e))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(make([]byte, 0, 256+size), head)
	if err != nil {
		return nil, err
	}
	if len(endpoints) > 0 && (len(se.ExportTo) > 0 || len(se.SubjectAltNames) > 0 || se.WorkloadSelector != nil) {
		return nil, fmt.Errorf("endpoints cannot be appended after fields 7-9")
	}
	for _, e := range endpoints {
		b = protowire.AppendTag(b, fieldSEEndpoints, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b, nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
