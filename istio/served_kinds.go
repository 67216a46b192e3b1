package istio

import (
	"fmt"
	"strings"
)

// ServedKinds lists the Istio kinds the bridge serves (generated or static), sorted: what render
// --kind and /debug/resources?kind= accept.
func ServedKinds() []string {
	colls := SpecCollections()
	out := make([]string, len(colls))
	for i, c := range colls {
		_, out[i], _ = strings.Cut(c, "/")
	}
	return out
}

// CheckKind returns the canonical spelling of kind (matched case-insensitively), or an error
// listing the valid kinds. A filter on a kind that does not exist would otherwise answer with
// nothing and look like "no such resources".
func CheckKind(kind string) (string, error) {
	for _, k := range ServedKinds() {
		if strings.EqualFold(k, kind) {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown kind %q: use one of %s", kind, strings.Join(ServedKinds(), ", "))
}
