package istio

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// HTTP header rules of Istio's validation (ValidateHTTPHeaderNameOrJwtClaimRoute,
// ValidateHTTPHeaderWithAuthorityOperationName, ValidateHTTPHeaderOperationName,
// ValidateHTTPHeaderValue, ValidateCORSHTTPHeaderName).

// jwtClaimHeader starts the header names a VirtualService bound to a gateway may route on.
const jwtClaimHeader = "@request.auth.claims"

// isJWTClaimRoute is jwt.ToRoutingClaim(name).Match: "@request.auth.claims.<claim>" or
// "@request.auth.claims[<claim>]", the prefix in any case.
func isJWTClaimRoute(name string) bool {
	if len(name) < len(jwtClaimHeader) || !strings.HasPrefix(strings.ToLower(name), jwtClaimHeader) {
		return false
	}
	rest := name[len(jwtClaimHeader):]
	return strings.HasPrefix(rest, ".") && len(rest) > 1 ||
		strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") && len(rest) > 2
}

// isTokenChar is RFC 7230's tchar, what a header name is made of.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// checkMatchHeaderName is ValidateHTTPHeaderNameOrJwtClaimRoute: a token, an HTTP/2 pseudo
// header, or a JWT claim.
func checkMatchHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("header name cannot be empty")
	case isJWTClaimRoute(name):
		return nil
	case name == ":method", name == ":scheme", name == ":authority", name == ":path", name == ":status":
		return nil
	case !isToken(name):
		return fmt.Errorf("header name %q is not a valid header name", name)
	}
	return nil
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// checkSetHeaderName is ValidateHTTPHeaderWithAuthorityOperationName, for request headers added
// or set: not a pseudo header, except the authority (":authority" or "host").
func checkSetHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("header name cannot be empty")
	case (strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")) && !isAuthorityHeader(name):
		return fmt.Errorf("invalid header %q: header cannot have \":\" prefix", name)
	}
	return nil
}

// checkOpHeaderName is ValidateHTTPHeaderOperationName, for request headers removed and response
// headers: neither Host nor a pseudo header.
func checkOpHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("header name cannot be empty")
	case strings.EqualFold(name, "host"):
		return fmt.Errorf("invalid header %q: cannot set Host header", name)
	case strings.HasPrefix(name, ":"):
		return fmt.Errorf("invalid header %q: header cannot have \":\" prefix", name)
	}
	return nil
}

// checkCORSHeaderName is ValidateCORSHTTPHeaderName: "*" or a token.
func checkCORSHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("header name cannot be empty")
	case name != "*" && !isToken(name):
		return fmt.Errorf("header name %q is not a valid header name", name)
	}
	return nil
}

// checkHeaderValue is ValidateHTTPHeaderValue: no control characters but tab, and Envoy's
// %VARIABLE% syntax well formed.
func checkHeaderValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("header value %q has a control character", v)
		}
	}
	if err := checkHeaderVariables(v); err != nil {
		return fmt.Errorf("header value %q: %w", v, err)
	}
	return nil
}

// States of checkHeaderVariables, after Envoy's router/header_parser.cc.
const (
	hvLiteral       = iota // plain text
	hvName                 // inside %NAME
	hvArgs                 // after "(": a '[' or a bare argument
	hvExpectString         // in [...]: a '"' starting a string
	hvString               // inside an argument string
	hvExpectDelim          // after a string: ',' or ']'
	hvExpectArgsEnd        // after ']': ')'
	hvExpectEnd            // after ')': the closing '%'
)

// checkHeaderVariables parses a header value as Envoy does: literal text, "%%" for a percent
// sign, and %NAME% or %NAME(args)% variables, args a bare string or a JSON array of strings.
func checkHeaderVariables(v string) error {
	st := hvLiteral
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch st {
		case hvLiteral:
			if c != '%' {
				continue
			}
			if i+1 == len(v) {
				return errors.New("invalid header configuration. Un-escaped %")
			}
			if v[i+1] == '%' {
				i++
				continue
			}
			st = hvName
		case hvName:
			switch c {
			case '%':
				st = hvLiteral
			case '(':
				st = hvArgs
			}
		case hvArgs:
			if c == '[' {
				st = hvExpectString
			} else if c != ' ' {
				st = hvString
			}
		case hvExpectString:
			if c == '"' {
				st = hvString
			} else if c != ' ' {
				return errors.New("invalid header configuration. Expecting '\"'")
			}
		case hvString:
			switch c {
			case '\\':
				if i+1 == len(v) {
					return errors.New("invalid header configuration. Un-terminated backslash in JSON string")
				}
				i++
			case ')':
				st = hvExpectEnd
			case '"':
				st = hvExpectDelim
			}
		case hvExpectDelim:
			switch {
			case c == ',':
				st = hvExpectString
			case c == ']':
				st = hvExpectArgsEnd
			case c != ' ':
				return errors.New("invalid header configuration. Expecting ',', ']', or whitespace")
			}
		case hvExpectArgsEnd:
			if c == ')' {
				st = hvExpectEnd
			} else if c != ' ' {
				return errors.New("invalid header configuration. Expecting ')' or whitespace")
			}
		case hvExpectEnd:
			if c == '%' {
				st = hvLiteral
			} else if c != ' ' {
				return errors.New("invalid header configuration. Expecting '%' or whitespace")
			}
		}
	}
	if st != hvLiteral {
		return errors.New("invalid header configuration. Un-terminated variable expression")
	}
	return nil
}

// checkHeaderOps checks a route's or destination's header manipulation: request headers added or
// set may be the authority, none removed or set may be Host or a pseudo header.
func checkHeaderOps(c *specCheck, path string, h *networking.Headers) {
	if h == nil {
		return
	}
	req, resp := joinPath(path, "request"), joinPath(path, "response")
	checkHeaderMap(c, joinPath(req, "set"), h.GetRequest().GetSet(), checkSetHeaderName)
	checkHeaderMap(c, joinPath(req, "add"), h.GetRequest().GetAdd(), checkSetHeaderName)
	for i, n := range h.GetRequest().GetRemove() {
		c.add(indexPath(joinPath(req, "remove"), i), checkOpHeaderName(n))
	}
	checkHeaderMap(c, joinPath(resp, "set"), h.GetResponse().GetSet(), checkOpHeaderName)
	checkHeaderMap(c, joinPath(resp, "add"), h.GetResponse().GetAdd(), checkOpHeaderName)
	for i, n := range h.GetResponse().GetRemove() {
		c.add(indexPath(joinPath(resp, "remove"), i), checkOpHeaderName(n))
	}
}

func checkHeaderMap(c *specCheck, path string, m map[string]string, checkName func(string) error) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		c.add(keyPath(path, k), checkName(k))
		c.add(keyPath(path, k), checkHeaderValue(m[k]))
	}
}
