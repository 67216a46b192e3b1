package translate

import (
	"fmt"
	"strings"
)

// Kinds lists the Istio kinds the bridge serves (generated or static), sorted: what render
// --kind and /debug/resources?kind= accept.
func Kinds() []string {
	out := make([]string, len(specKinds))
	for i, k := range specKinds {
		_, out[i], _ = strings.Cut(k.collection, "/")
	}
	return out
}

// CheckKind returns the canonical spelling of kind (matched case-insensitively), or an error
// listing the valid kinds. A filter on a kind that does not exist would otherwise answer with
// nothing and look like "no such resources".
func CheckKind(kind string) (string, error) {
	for _, k := range Kinds() {
		if strings.EqualFold(k, kind) {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown kind %q: use one of %s", kind, strings.Join(Kinds(), ", "))
}

// DropsEndpoint reports whether the warning means an instance is not served at all (its
// endpoint left out of an emitted ServiceEntry), as opposed to served with an adjustment.
// render fails on these as it does on invalid resources.
func (w Warning) DropsEndpoint() bool {
	switch w.Reason {
	case reasonEndpointAddress, reasonHostnameAddress, reasonEndpointInvalid, reasonDuplicateInstance:
		return true
	}
	return false
}
