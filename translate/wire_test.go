package translate

import (
	"bytes"
	"slices"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestEncodeWorkloadEntry compares the hand encoding with protobuf-go's deterministic marshal.
// Resources keep only their bodies, so this is the check that the encoding is of the spec built,
// not merely a canonical encoding of something.
func TestEncodeWorkloadEntry(t *testing.T) {
	for _, we := range []*networking.WorkloadEntry{
		{},
		{Address: "10.0.0.1"},
		{Address: "vm-1.example", Weight: 100, Locality: "cn-hangzhou/cn-hangzhou-a"},
		{Address: "10.0.0.2", Ports: map[string]uint32{"http": 8080, "grpc-admin": 50051, "a": 1}},
		{Address: "10.0.0.3", Labels: map[string]string{"version": "v1", "app": "a", "b": "", "é": "ü"}, Network: "n1",
			ServiceAccount: "sa", Weight: 1 << 31, Ports: map[string]uint32{"tcp-dubbo": 20880}},
	} {
		got, err := encodeWorkloadEntry(we)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(we)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%v: encoded %x, want %x", we, got, want)
		}
	}
}

// TestEndpointBytesShared checks that a service's endpoint encodings are held once: inside its
// ServiceEntry's body inline, as its WorkloadEntries' bodies otherwise, also when a change
// re-renders the service and unchanged resources are reused from the previous output.
func TestEndpointBytesShared(t *testing.T) {
	within := func(w, body []byte) bool {
		p, b := uintptr(unsafe.Pointer(unsafe.SliceData(w))), uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		return len(w) > 0 && p >= b && p+uintptr(len(w)) <= b+uintptr(len(body))
	}
	services := estate(30, 4)
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		tr := mustNew(t, benchOptions(mode))
		tr.Translate(services)
		in := slices.Clone(services)
		c := in[7].Clone()
		c.Instances[2].Weight++
		in[7] = c
		out := tr.Translate(in)
		bodies := map[string][]byte{}
		for _, coll := range []string{istio.CollectionServiceEntry, istio.CollectionWorkloadEntry} {
			for _, r := range out.Resources[coll] {
				bodies[r.Name] = r.Body.Value
			}
		}
		checked := 0
		for _, e := range tr.entries {
			if e.p.fatal != nil || len(e.out.ses) == 0 {
				continue
			}
			name := seName(e.p.hostKey)
			for _, ep := range e.p.endpoints {
				body := bodies[name]
				if mode == EndpointModeWorkloadEntry {
					body = bodies[weName(name, ep.name)]
				}
				if !within(ep.wire, body) {
					t.Fatalf("%s: %s endpoint %s: its encoding is not held by the output", mode, e.p.src, ep.id)
				}
				checked++
			}
		}
		if checked != len(services)*4 {
			t.Errorf("%s: checked %d endpoints, want %d", mode, checked, len(services)*4)
		}
	}
}
