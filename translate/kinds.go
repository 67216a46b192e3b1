package translate

import "github.com/mcp-bridge/mcp-bridge/istio"

// DropsEndpoint reports whether the warning means an instance is not served at all (its
// endpoint left out of an emitted ServiceEntry), as opposed to served with an adjustment.
// render fails on these as it does on invalid resources.
func DropsEndpoint(w istio.Warning) bool {
	switch w.Reason {
	case reasonEndpointAddress, reasonHostnameAddress, reasonEndpointInvalid, reasonDuplicateInstance:
		return true
	}
	return false
}
