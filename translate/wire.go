package translate

import (
	"fmt"
	"maps"
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

// encodeWorkloadEntry returns the deterministic encoding of a WorkloadEntry, in a slice of exactly
// its size: in workloadEntry mode it is kept as the WorkloadEntry's body.
func encodeWorkloadEntry(we *networking.WorkloadEntry) ([]byte, error) {
	for _, s := range []string{we.Address, we.Network, we.Locality, we.ServiceAccount} {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("string field %q is not valid UTF-8", s)
		}
	}
	portKeys, labelKeys := slices.Sorted(maps.Keys(we.Ports)), slices.Sorted(maps.Keys(we.Labels))
	size := sizeString(fieldWEAddress, we.Address) + sizeString(fieldWENetwork, we.Network) +
		sizeString(fieldWELocality, we.Locality) + sizeString(fieldWEServiceAccount, we.ServiceAccount)
	for _, k := range portKeys {
		size += protowire.SizeTag(fieldWEPorts) + protowire.SizeBytes(portEntrySize(k, we.Ports[k]))
	}
	for _, k := range labelKeys {
		v := we.Labels[k]
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("label %q=%q is not valid UTF-8", k, v)
		}
		size += protowire.SizeTag(fieldWELabels) + protowire.SizeBytes(labelEntrySize(k, v))
	}
	if we.Weight != 0 {
		size += protowire.SizeTag(fieldWEWeight) + protowire.SizeVarint(uint64(we.Weight))
	}

	b := make([]byte, 0, size)
	b = appendString(b, fieldWEAddress, we.Address)
	for _, k := range portKeys {
		v := we.Ports[k]
		b = protowire.AppendTag(b, fieldWEPorts, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(portEntrySize(k, v)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
	}
	for _, k := range labelKeys {
		v := we.Labels[k]
		b = protowire.AppendTag(b, fieldWELabels, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(labelEntrySize(k, v)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	b = appendString(b, fieldWENetwork, we.Network)
	b = appendString(b, fieldWELocality, we.Locality)
	if we.Weight != 0 {
		b = protowire.AppendTag(b, fieldWEWeight, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(we.Weight))
	}
	b = appendString(b, fieldWEServiceAccount, we.ServiceAccount)
	if len(b) != size {
		return nil, fmt.Errorf("encoded %d bytes, computed %d", len(b), size)
	}
	return b, nil
}

// portEntrySize and labelEntrySize are the sizes of a map entry's message (key 1, value 2).
func portEntrySize(k string, v uint32) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(v))
}

func labelEntrySize(k, v string) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
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

func sizeString(field protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(field) + protowire.SizeBytes(len(s))
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}
