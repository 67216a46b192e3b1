package istio

import (
	"fmt"
	"strconv"
	"strings"
)

// Name and label rules Istio (and Kubernetes) apply to metadata, hosts and ports. translate uses
// them to build names that pass, the validators to refuse those that do not.

// CheckHost applies Istio's rules for a ServiceEntry host (agent.ValidateWildcardDomain without
// wildcards, which we never emit) plus the DNS limit of 253 characters, so that a host also works
// as a resource name. It accepts upper case, as Istio does, for preserveHostCase.
func CheckHost(h string) error {
	if h == "" {
		return fmt.Errorf("host is empty")
	}
	if len(h) > 253 {
		return fmt.Errorf("host %q is %d characters long, more than 253", h, len(h))
	}
	last := ""
	for l := range strings.SplitSeq(h, ".") {
		if !IsDNS1123Label(l) {
			return fmt.Errorf("host %q has an invalid label %q (want 1-63 letters, digits or '-', not starting or ending with '-')", h, l)
		}
		last = l
	}
	if _, err := strconv.Atoi(last); err == nil {
		return fmt.Errorf("host %q ends in an all-numeric label", h)
	}
	return nil
}

// IsDNS1123Label is Istio's labels.IsDNS1123Label: letters of either case, digits, '-', 1-63 long,
// alphanumeric at both ends. Port names must satisfy it.
func IsDNS1123Label(s string) bool {
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

// IsDNSLabel is the stricter Kubernetes form (lower case only) that namespace names need.
func IsDNSLabel(s string) bool {
	if !IsDNS1123Label(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}

// IsDNSSubdomain is a Kubernetes object name: lower-case DNS-1123 labels joined by '.', at most
// 253 characters.
func IsDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !IsDNSLabel(l) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidLabelValue is Kubernetes' rule, which Istio applies too: empty, or at most 63 characters
// of letters, digits, '-', '_' and '.', alphanumeric at both ends. (Istio does not check the
// length; Kubernetes and its tools do, so neither do we emit longer ones.)
func ValidLabelValue(v string) bool {
	return v == "" || validQualifiedName(v)
}

func validQualifiedName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// ValidLabelKey is Istio's validateTagKey: [prefix/]name, the prefix DNS-1123 labels joined by '.'
// and at most 253 characters, the name a qualified name of at most 63. Like Kubernetes, and unlike
// Istio, it wants the prefix in lower case.
func ValidLabelKey(k string) bool {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		return validQualifiedName(k)
	}
	return validQualifiedName(name) && IsDNSSubdomain(prefix)
}
