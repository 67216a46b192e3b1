package translate

import (
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Every protocol the model knows maps to an Istio port protocol, and translate maps no other.
func TestProtocolsMatchTheModel(t *testing.T) {
	for _, p := range registry.Protocols() {
		if _, ok := protocols[p]; !ok {
			t.Errorf("registry protocol %q has no Istio mapping", p)
		}
	}
	if len(protocols) != len(registry.Protocols()) {
		t.Errorf("translate maps %d protocols, the model has %d", len(protocols), len(registry.Protocols()))
	}
}
