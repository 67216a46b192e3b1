package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// CheckAddress reports whether Istio would take addr as an endpoint address, and if not, why.
// Every adapter checks each instance with it before sending (Service.Validate does too, as a
// backstop), so an address Istio would drop is rejected where the operator can see the entry,
// not silently lost downstream.
//
// The rule is Istio's for ServiceEntry endpoints: an IP literal (v4 or v6, without brackets or
// an IPv6 zone, which means nothing off the instance's own host), or a DNS name as
// agent.ValidateFQDN accepts it: at most 253 characters (without the trailing dot) of DNS-1123 labels (letters, digits,
// '-', 1-63 long, alphanumeric at both ends; no '_'), an optional trailing dot, and a last label
// that is not all-numeric. The last rule is what makes "10.0.0.300" an invalid IP rather than a
// host name, and it is applied to "10.0.0.300." too (Istio would let that one through as a
// name; it is a typo all the same).
func CheckAddress(addr string) error {
	if addr == "" {
		return errors.New("address is empty")
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("IPv6 address %s has a zone, which means nothing off the instance's own host", short(addr))
		}
		return nil
	}
	if strings.HasPrefix(addr, "[") {
		return fmt.Errorf("%s: write an IPv6 address without brackets", short(addr))
	}
	if strings.Contains(addr, ":") {
		if _, _, err := splitHostPort(addr); err == nil {
			return fmt.Errorf("%s is not an IP address or host name: it looks like address:port; give the port separately", short(addr))
		}
		return fmt.Errorf("%s is not a valid IPv6 address", short(addr))
	}
	name := strings.TrimSuffix(addr, ".")
	if len(name) > 253 {
		// Istio allows 255 with the trailing dot; DNS (and translate's host check) 253 without.
		return fmt.Errorf("host name is %d characters long, more than 253", len(name))
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if !dns1123Label(l) {
			return fmt.Errorf("%s is neither an IP address nor a DNS name: label %s is not 1-63 letters, digits or '-' (alphanumeric at both ends)", short(addr), short(l))
		}
	}
	if last := labels[len(labels)-1]; allDigits(last) {
		if len(labels) == 4 && allDigitLabels(labels) {
			return fmt.Errorf("%s is not a valid IPv4 address (each part must be 0-255, without leading zeros)", short(addr))
		}
		return fmt.Errorf("%s is neither an IP address nor a DNS name: a host name's last label cannot be all-numeric", short(addr))
	}
	return nil
}

// splitHostPort accepts "host:port" with a numeric port, the mistake CheckAddress explains.
func splitHostPort(a string) (string, int, error) {
	i := strings.LastIndexByte(a, ':')
	host, port := a[:i], a[i+1:]
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || strings.Contains(host, ":") && !strings.HasSuffix(host, "]") {
		return "", 0, errors.New("not host:port")
	}
	return host, n, nil
}

func dns1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allDigitLabels(ls []string) bool {
	for _, l := range ls {
		if !allDigits(l) {
			return false
		}
	}
	return true
}

// short quotes s for an error message, cut to 80 bytes: an address comes from a registry and
// may be arbitrarily long.
func short(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "..."
	}
	return strconv.Quote(s)
}
