package translate

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// hostData is what host templates see: the service's fields, each pre-sanitised by hostField.
type hostData struct {
	Name, Group, Namespace, Version, Registry string
}

// hostField makes one registry value usable inside a host: lower-cased unless preserveCase,
// characters other than ASCII letters, digits, '-' and '.' replaced by '-', labels holding non-ASCII
// text Punycode-encoded (as IDNA does, so "订单" stays distinct from "支付"), and '-' trimmed at label
// edges. With dots false, '.' is replaced too (versions: 1.0.0 -> 1-0-0). What is left invalid
// (an empty or over-long label) is caught when the whole host is checked.
func hostField(s string, dots, preserveCase bool) string {
	if s == "" {
		return ""
	}
	if !preserveCase {
		s = strings.ToLower(s)
	}
	if !dots {
		s = strings.ReplaceAll(s, ".", "-")
	}
	if isHostSafe(s) {
		return s
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		ascii := true
		b := []byte(l)
		for j := 0; j < len(b); j++ {
			c := b[j]
			switch {
			case c >= 0x80:
				ascii = false
			case !isAlnum(c) && c != '-':
				b[j] = '-'
			}
		}
		l = string(b)
		if !ascii {
			// Invalid UTF-8 would come out of Punycode as replacement characters, making distinct
			// names equal: hash it instead, which is stable and keeps them distinct.
			if p, err := idna.Punycode.ToASCII(l); err == nil && utf8.ValidString(l) {
				l = p
			} else {
				l = "x-" + shortHash(l)
			}
		}
		labels[i] = strings.Trim(l, "-")
	}
	return strings.Join(labels, ".")
}

// isHostSafe reports whether s needs no rewriting by hostField.
func isHostSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	for l := range strings.SplitSeq(s, ".") {
		if strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
	}
	return true
}

// checkHost applies Istio's rules for a ServiceEntry host (agent.ValidateWildcardDomain without
// wildcards, which we never emit) plus the DNS limit of 253 characters, so that a host also works
// as a resource name. It accepts upper case, as Istio does, for preserveHostCase.
func checkHost(h string) error {
	if h == "" {
		return fmt.Errorf("host is empty")
	}
	if len(h) > 253 {
		return fmt.Errorf("host %q is %d characters long, more than 253", h, len(h))
	}
	last := ""
	for l := range strings.SplitSeq(h, ".") {
		if !isDNS1123Label(l) {
			return fmt.Errorf("host %q has an invalid label %q (want 1-63 letters, digits or '-', not starting or ending with '-')", h, l)
		}
		last = l
	}
	if _, err := strconv.Atoi(last); err == nil {
		return fmt.Errorf("host %q ends in an all-numeric label", h)
	}
	return nil
}

// isDNS1123Label is Istio's labels.IsDNS1123Label: letters of either case, digits, '-', 1-63 long,
// alphanumeric at both ends. Port names must satisfy it.
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// IsDNSLabel reports whether s is a Kubernetes DNS label (RFC 1123, lower case only), as namespace
// names and registry names must be: the one definition config uses too.
func IsDNSLabel(s string) bool { return isDNSLabel(s) }

// isDNSLabel is the stricter Kubernetes form (lower case only) that namespace names need.
func isDNSLabel(s string) bool {
	if !isDNS1123Label(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}

// isDNSSubdomain is a Kubernetes object name: lower-case DNS-1123 labels joined by '.', at most
// 253 characters.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dnsLabel turns any string into a lower-case DNS-1123 label: invalid characters become '-',
// '-' is trimmed at the ends, and a result over 63 characters is cut and given a hash suffix.
// An input with nothing usable becomes "x-<hash>", so distinct inputs stay distinct.
func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !isAlnum(c) {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if out == "" {
		return "x-" + shortHash(s)
	}
	return fitLen(out, 63, s)
}

// fitLen returns s when it fits in max bytes, else a prefix of s ending in an alphanumeric
// character, then '-' and a hash of orig (the value s was derived from), max bytes in all.
func fitLen(s string, max int, orig string) string {
	if len(s) <= max {
		return s
	}
	h := shortHash(orig)
	cut := strings.TrimRight(s[:max-len(h)-1], "-_.")
	if cut == "" {
		return h
	}
	return cut + "-" + h
}

// fitSubdomain is fitLen for a DNS subdomain: the cut also keeps its last label within 63
// characters once the hash is appended, and never ends in '.' or '-'.
func fitSubdomain(s string, max int) string {
	if len(s) <= max {
		return s
	}
	h := shortHash(s)
	cut := strings.TrimRight(s[:max-len(h)-1], "-.")
	if i := strings.LastIndexByte(cut, '.'); len(cut)-i-1 > 63-len(h)-1 {
		cut = strings.TrimRight(cut[:i+1+63-len(h)-1], "-.")
	}
	if cut == "" {
		return h
	}
	return cut + "-" + h
}

// shortHash is 8 hex digits of FNV-1a: stable across processes, versions and machines.
func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// sourceOf names a service for debug pages and orders services deterministically:
// "<registry>/<key>".
// It ends up in an annotation, a protobuf string, so invalid UTF-8 is replaced.
func sourceOf(s *registry.Service) string {
	return strings.ToValidUTF8(s.Registry+"/"+s.Key().String(), "\uFFFD")
}
