package istio

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Field rules shared by the static kinds, each Istio's function of the same purpose
// (agent.ValidateWildcardDomain, ValidateDuration, validateStringMatch, ...). They return an
// error, or record problems at a path.

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func keyPath(path, k string) string { return path + "[" + strconv.Quote(k) + "]" }

// checkWildcardDomain is agent.ValidateWildcardDomain: at most 255 characters, a first label
// that is "*", a DNS-1123 label, or one prefixed by "*" or "*-", then DNS-1123 labels, a trailing
// dot allowed, the last label not all digits. (Istio tests "all digits" with strconv.Atoi, so it
// lets a 20-digit label through; we do not.)
func checkWildcardDomain(d string) error {
	if err := checkDomainLength(d); err != nil {
		return err
	}
	first, rest, dotted := strings.Cut(d, ".")
	if !isWildcardLabel(first) {
		return fmt.Errorf("domain name %q invalid (label %q invalid)", d, first)
	}
	if dotted {
		return checkDNSLabels(d, rest)
	}
	return nil
}

func checkDomainLength(d string) error {
	switch {
	case d == "":
		return errors.New("empty domain name not allowed")
	case len(d) > 255:
		return fmt.Errorf("domain name %q too long (max 255)", d)
	}
	return nil
}

// checkDNSLabels is agent.ValidateDNS1123Labels on the part of domain d after its first label.
func checkDNSLabels(d, labels string) error {
	parts := strings.Split(labels, ".")
	if last := parts[len(parts)-1]; last != "" && allDigits(last) {
		return fmt.Errorf("domain name %q invalid (top level domain %q cannot be all-numeric)", d, last)
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" {
			return nil // a trailing dot
		}
		if !IsDNS1123Label(l) {
			return fmt.Errorf("domain name %q invalid (label %q invalid)", d, l)
		}
	}
	return nil
}

func isWildcardLabel(l string) bool {
	if len(l) > 63 {
		return false
	}
	return l == "*" || IsDNS1123Label(l) || strings.HasPrefix(l, "*-") && IsDNS1123Label(l[2:]) ||
		strings.HasPrefix(l, "*") && IsDNS1123Label(l[1:])
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// matchesHost is host.Name.Matches: equal, or either one's wildcard covers the other.
func matchesHost(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// subsetOfHost is host.Name.SubsetOf: every name a matches, b matches too.
func subsetOfHost(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return len(a) >= len(b) && strings.HasSuffix(a[1:], b[1:])
	case aw:
		return false
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// checkIP is agent.ValidateIPAddress, except that an IPv6 zone is refused (Envoy cannot use one
// from a config).
func checkIP(s string) error {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("%q is not a valid IP", s)
	}
	return nil
}

func isIP(s string) bool { return checkIP(s) == nil }

// checkIPSubnet is agent.ValidateIPSubnet: a CIDR block or an IP address.
func checkIPSubnet(s string) error {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not a valid CIDR block", s)
		}
		return nil
	}
	return checkIP(s)
}

func checkPort(n uint32) error {
	if n < 1 || n > 65535 {
		return fmt.Errorf("port number %d must be in the range 1..65535", n)
	}
	return nil
}

// checkDuration is agent.ValidateDuration: at least 1ms, in whole milliseconds. It also refuses
// a duration protobuf itself calls invalid (mixed signs), which Istio would read as something else.
func checkDuration(d *durationpb.Duration) error {
	if err := d.CheckValid(); err != nil {
		return fmt.Errorf("invalid duration: %w", err)
	}
	v := d.AsDuration()
	if v < time.Millisecond {
		return fmt.Errorf("duration %v must be at least 1ms", v)
	}
	if v%time.Millisecond != 0 {
		return fmt.Errorf("duration %v: only durations to ms precision are supported", v)
	}
	return nil
}

// checkDurationAt records checkDuration's problem, if the duration is set.
func checkDurationAt(c *specCheck, path string, d *durationpb.Duration) {
	if d != nil {
		c.add(path, checkDuration(d))
	}
}

func checkPercentInt(v int32) error {
	if v < 0 || v > 100 {
		return fmt.Errorf("percentage %d is not in range 0..100", v)
	}
	return nil
}

// checkPercentage is validatePercentage: 0, or 0.0001 to 100.
func checkPercentage(p *networking.Percent) error {
	if p == nil {
		return nil
	}
	if v := p.Value; math.IsNaN(v) || v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		return fmt.Errorf("percentage %v is neither 0.0, nor in range [0.0001, 100.0]", v)
	}
	return nil
}

// checkStringMatch is validateStringMatch: a prefix must not be empty (except in a URI match,
// where Envoy takes "" as "any path"), a regex must be valid RE2 of at most 1024 characters.
func checkStringMatch(c *specCheck, path string, sm *networking.StringMatch, emptyPrefixOK bool) {
	switch m := sm.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if m.Prefix == "" && !emptyPrefixOK {
			c.addf(joinPath(path, "prefix"), "prefix string match should not be empty")
		}
	case *networking.StringMatch_Regex:
		c.add(joinPath(path, "regex"), checkRegex(m.Regex))
	}
}

// checkRegex is validateStringRegexp. Istio compiles with Go's regexp, which is RE2 as Envoy's.
func checkRegex(re string) error {
	switch {
	case re == "":
		return errors.New("regex string match should not be empty")
	case len(re) > 1024:
		return errors.New("regex is too large, max length allowed is 1024")
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("%w; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)", err)
	}
	return nil
}

// checkLabelsAt is labels.Instance.Validate, with the bridge's stricter label rules (values at
// most 63 characters, lower-case key prefixes, as Kubernetes wants).
func checkLabelsAt(c *specCheck, path string, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !ValidLabelKey(k) {
			c.addf(keyPath(path, k), "invalid label key %q", k)
		}
		if v := labels[k]; !ValidLabelValue(v) {
			c.addf(keyPath(path, k), "invalid label value %q", v)
		}
	}
}

// checkSelectorLabels is ValidateAlphaWorkloadSelector (and validateWorkloadSelector) plus label
// syntax. Istio only warns about a selector without labels, then applies the resource to every
// workload of the namespace; we refuse it, as validate.go does for ServiceEntries.
func checkSelectorLabels(c *specCheck, path string, labels map[string]string) {
	if len(labels) == 0 {
		c.addf(path, "workload selector specified without labels (it would select every workload of the namespace)")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" || strings.Contains(k, "*") || strings.Contains(labels[k], "*") {
			c.addf(keyPath(path, k), "empty key or wildcard is not supported in selector: %q", k+"="+labels[k])
		}
	}
	checkLabelsAt(c, path, labels)
}

// checkGatewayNames is validateGatewayNames: "mesh", "<namespace>/<name>" with both DNS-1123
// labels, or the legacy "<name>.<namespace>" FQDN form. (Istio stops at the first name without
// a '/'; we check every one.)
func checkGatewayNames(c *specCheck, path string, names []string) {
	for i, g := range names {
		at := indexPath(path, i)
		ns, name, ok := strings.Cut(g, "/")
		if !ok {
			c.add(at, CheckFQDN(g))
			continue
		}
		if ns == "" || name == "" {
			c.addf(at, "gateway namespace and name cannot be empty: %q", g)
		}
		if !IsDNS1123Label(ns) {
			c.addf(at, "invalid value for namespace: %q", ns)
		}
		if !IsDNS1123Label(name) {
			c.addf(at, "invalid value for gateway name: %q", name)
		}
	}
}

// exportKind says which exportTo rules apply.
type exportKind int

const (
	exportConfig                  exportKind = iota // VirtualService, DestinationRule
	exportServiceEntry                              // "~" (no one) allowed, alone
	exportDestinationWithSelector                   // only the resource's own namespace
)

// checkExportTo is validateExportTo: ".", "*", or namespace names, no duplicates ("." is the
// resource's namespace), "*" alone; "~" only for ServiceEntries and alone; a DestinationRule with
// a workload selector exports to its own namespace only.
func checkExportTo(c *specCheck, path string, exportTo []string, kind exportKind) {
	if len(exportTo) == 0 {
		return
	}
	seen := map[string]bool{}
	for i, e := range exportTo {
		at := indexPath(path, i)
		k := e
		if e == "." {
			k = c.namespace
		}
		switch {
		case seen[k] && k != e:
			c.addf(at, "duplicate entries in exportTo: . and current namespace %s", c.namespace)
			continue
		case seen[k]:
			c.addf(at, "duplicate entries in exportTo for entry %s", e)
			continue
		case k == "~" && kind == exportServiceEntry, k == "*":
		case k == "~":
			c.addf(at, "exportTo ~ (none) is not allowed for Istio configuration objects")
			continue
		case !IsDNS1123Label(k):
			c.addf(at, "only ., *, or a valid DNS 1123 label is allowed as exportTo entry: %q", e)
			continue
		}
		seen[k] = true
	}
	if kind == exportDestinationWithSelector && len(seen) > 0 {
		if !seen[c.namespace] {
			c.addf(path, "destination rule with workload selector cannot have exportTo beyond current namespace")
		} else if len(seen) > 1 {
			c.addf(path, "destination rule with workload selector cannot have multiple entries in exportTo")
		}
	}
	if seen["*"] && len(exportTo) > 1 {
		c.addf(path, "cannot have both public (*) and non-public exportTo values for a resource")
	}
	if seen["~"] && len(exportTo) > 1 {
		c.addf(path, "cannot export service entry to no one (~) and someone")
	}
}

// checkDestination is validateDestination: a host (not "*"), a DNS-1123 subset name, a port
// number in range.
func checkDestination(c *specCheck, path string, d *networking.Destination) {
	if d == nil {
		return
	}
	if d.Host == "*" {
		c.addf(joinPath(path, "host"), "invalid destination host %s", d.Host)
	} else {
		c.add(joinPath(path, "host"), checkWildcardDomain(d.Host))
	}
	if d.Subset != "" {
		c.add(joinPath(path, "subset"), checkSubsetName(d.Subset))
	}
	if d.Port != nil {
		c.add(joinPath(path, "port.number"), checkPort(d.Port.Number))
	}
}

func checkSubsetName(name string) error {
	if name == "" {
		return errors.New("subset name cannot be empty")
	}
	if !IsDNS1123Label(name) {
		return fmt.Errorf("subset name is invalid: %q", name)
	}
	return nil
}

// checkProtocol is ValidateProtocol: empty (sniffed) or one Istio knows.
func checkProtocol(p string) error {
	if p != "" && !knownProtocol(p) {
		return fmt.Errorf("unsupported protocol: %q", p)
	}
	return nil
}
