package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// Labels and annotations the bridge sets itself. Their prefix is ours: registry labels under it are
// dropped, so a registry cannot forge them.
const (
	labelPrefix = "mcp-bridge.io"
	// LabelRegistry names the registry a resource came from.
	LabelRegistry = labelPrefix + "/registry"
	// LabelKind is the registry.Kind of the service.
	LabelKind = labelPrefix + "/kind"
	// LabelService is put on WorkloadEntries and selected by their ServiceEntry's
	// workloadSelector; its value is unique per service within the namespace.
	LabelService = labelPrefix + "/service"
	// AnnotationSource is "<registry>/<service key>" on ServiceEntries.
	AnnotationSource = labelPrefix + "/source"
	// LabelTLSMode is Istio's security.istio.io/tlsMode.
	LabelTLSMode = "security.istio.io/tlsMode"
)

// sanitizeLabels turns registry metadata into labels Istio accepts (see SanitizeLabelKey and
// SanitizeLabelValue). Keys keep refuses (given the key as given and as sanitised) go silently,
// counted in dropped when it is not nil; keys that cannot be made valid, reserved keys, and keys
// that collide once sanitised are dropped with a note; a key or value rewritten to be valid is
// noted (label-rewritten) with the original and the result. When two raw keys map to one key, a
// key that was valid as given wins, else the first in byte order: the result never depends on map
// order.
func sanitizeLabels(in map[string]string, keep func(raw, key string) bool, n *notes, dropped map[string]int) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	var odd []string // keys needing more than a look: handled in order, so notes are stable
	for k, v := range in {
		if !istio.ValidLabelKey(k) || reservedLabelKey(k) {
			odd = append(odd, k)
			continue
		}
		if !keep(k, k) {
			if dropped != nil {
				dropped[k]++
			}
			continue
		}
		out[k] = sanitizeValueNoted(k, v, n)
	}
	slices.Sort(odd)
	for _, k := range odd {
		sk, ok := SanitizeLabelKey(k)
		if emitted := cmp.Or(sk, k); !keep(k, emitted) {
			if dropped != nil {
				dropped[k]++
			}
			continue
		}
		switch {
		case !ok:
			n.add(reasonLabelDropped, fmt.Sprintf("%q", k))
		case reservedLabelKey(sk):
			n.add(reasonLabelReserved, k)
		default:
			if _, dup := out[sk]; dup {
				n.add(reasonLabelConflict, fmt.Sprintf("%q -> %q", k, sk))
				continue
			}
			// A subset selector written against the registry's key would no longer match.
			n.addKeyed(reasonLabelRewritten, k, fmt.Sprintf("label key %s -> %q", clip(k), sk))
			out[sk] = sanitizeValueNoted(k, in[k], n)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// sanitizeValueNoted is SanitizeLabelValue with a note (under the registry's key k) when the value changes: a subset selector
// or route match written against the registry's value would silently stop matching.
func sanitizeValueNoted(k, v string, n *notes) string {
	sv := SanitizeLabelValue(v)
	if sv != v {
		n.addKeyed(reasonLabelRewritten, k, fmt.Sprintf("label %s: value %s -> %q", clip(k), clip(v), sv))
	}
	return sv
}

// clip quotes s for a warning, cut to 80 bytes: registry metadata may be arbitrarily long.
func clip(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "..."
	}
	return strconv.Quote(s)
}

// reservedLabelKey reports keys that would change Istio's behaviour (istio.io/rev filters
// resources out, security.istio.io/tlsMode overrides ours, topology.istio.io/... moves endpoints)
// or would forge our own labels. Registries do not get to set them.
func reservedLabelKey(k string) bool {
	prefix, _, ok := strings.Cut(k, "/")
	if !ok {
		return false
	}
	prefix = strings.ToLower(prefix)
	return prefix == "istio.io" || strings.HasSuffix(prefix, ".istio.io") || prefix == labelPrefix
}

// SanitizeLabelValue returns v as a valid label value: unchanged when it already is one; else
// non-ASCII text Punycode-encoded, other invalid characters replaced by '-', non-alphanumeric
// characters trimmed at the ends, and the result cut to 63 characters with a hash of v as suffix.
// A value with nothing usable left becomes "x-<hash>". The rules engine uses it to match values in
// subsets.
func SanitizeLabelValue(v string) string {
	if istio.ValidLabelValue(v) {
		return v
	}
	s := sanitizeQualified(v)
	if s == "" {
		return "x-" + shortHash(v)
	}
	return s
}

// SanitizeLabelKey returns k as a valid label key ([prefix/]name; the prefix a lower-case DNS
// subdomain of at most 253 characters, the name as a label value but not empty), or false when
// nothing usable is left. Only the first '/' separates the prefix.
func SanitizeLabelKey(k string) (string, bool) {
	if istio.ValidLabelKey(k) {
		return k, true
	}
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = k, ""
	}
	name = sanitizeQualified(name)
	if name == "" {
		return "", false
	}
	if prefix != "" {
		labels := strings.Split(hostField(prefix, true, false), ".")
		labels = slices.DeleteFunc(labels, func(l string) bool { return l == "" })
		for i, l := range labels {
			labels[i] = fitLen(l, 63, l)
		}
		prefix = fitLen(strings.Join(labels, "."), 253, prefix)
		prefix = strings.TrimRight(prefix, ".-")
	}
	if prefix != "" {
		name = prefix + "/" + name
	}
	return name, istio.ValidLabelKey(name)
}

// sanitizeQualified does the work of SanitizeLabelValue; it returns "" when nothing is left.
func sanitizeQualified(v string) string {
	b := []byte(v)
	ascii := true
	for i, c := range b {
		switch {
		case c >= 0x80:
			ascii = false
		case !isAlnum(c) && c != '-' && c != '_' && c != '.':
			b[i] = '-'
		}
	}
	s := string(b)
	if !ascii {
		// Invalid UTF-8 would come out of Punycode as replacement characters, making distinct
		// values equal: hash it instead.
		if !utf8.ValidString(s) {
			return "x-" + shortHash(v)
		}
		if p, err := idna.Punycode.ToASCII(s); err == nil {
			s = p
		} else {
			s = "x-" + shortHash(v)
		}
		// Punycode keeps ASCII as it is, but a label of it may end in '-'; nothing else invalid.
	}
	s = strings.TrimFunc(s, func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) })
	if s == "" {
		return ""
	}
	return fitLen(s, 63, v)
}
