package istio

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// HTTP route rules of a VirtualService: Istio's validateHTTPRoute and what it calls.

// checkHTTPRoute checks one HTTP route; delegate says its VirtualService is a delegate.
func checkHTTPRoute(c *specCheck, at string, r *networking.HTTPRoute, delegate bool) {
	checkHTTPRouteShape(c, at, r, delegate)
	for j, m := range r.Match {
		checkHTTPMatch(c, indexPath(joinPath(at, "match"), j), m)
	}
	checkHeaderOps(c, joinPath(at, "headers"), r.Headers)
	checkCORS(c, joinPath(at, "corsPolicy"), r.CorsPolicy)
	checkFault(c, joinPath(at, "fault"), r.Fault)
	//lint:ignore SA1019 deprecated, still honoured by Istio
	if mp := r.MirrorPercent; mp != nil && mp.GetValue() > 100 {
		c.addf(joinPath(at, "mirrorPercent"), "mirror_percent must have a max value of 100 (it has %d)", mp.GetValue())
	}
	if r.MirrorPercentage != nil {
		c.add(joinPath(at, "mirrorPercentage"), checkMirrorPercentage(r.MirrorPercentage.GetValue()))
	}
	checkDestination(c, joinPath(at, "mirror"), r.Mirror)
	for k, m := range r.Mirrors {
		mat := indexPath(joinPath(at, "mirrors"), k)
		switch {
		case m == nil:
			c.addf(mat, "mirror cannot be null")
		case m.Destination == nil:
			c.addf(joinPath(mat, "destination"), "destination is required for mirrors")
		default:
			checkDestination(c, joinPath(mat, "destination"), m.Destination)
			if m.Percentage != nil {
				c.add(joinPath(mat, "percentage"), checkMirrorPercentage(m.Percentage.GetValue()))
			}
		}
	}
	checkRedirect(c, joinPath(at, "redirect"), r.Redirect, r.Match)
	checkDirectResponse(c, joinPath(at, "directResponse"), r.DirectResponse)
	checkRetries(c, joinPath(at, "retries"), r.Retries)
	checkRewrite(c, joinPath(at, "rewrite"), r.Rewrite)
	checkAuthorityRewrite(c, at, r)
	checkHTTPRouteDestinations(c, joinPath(at, "route"), r.Route)
	checkDurationAt(c, joinPath(at, "timeout"), r.Timeout)
}

// checkHTTPRouteShape is validateHTTPRouteConflict: a route forwards (route), redirects
// (redirect) or answers (directResponse), exactly one; a root route (with delegate) only
// delegates. Stricter than Istio: a delegate must name a VirtualService validly.
func checkHTTPRouteShape(c *specCheck, at string, r *networking.HTTPRoute, delegate bool) {
	if r.Delegate != nil && !delegate {
		if r.Redirect != nil {
			c.addf(joinPath(at, "redirect"), "root HTTP route %s must not specify redirect", r.Name)
		}
		if len(r.Route) > 0 {
			c.addf(joinPath(at, "route"), "root HTTP route %s must not specify route", r.Name)
		}
		if !IsDNSSubdomain(r.Delegate.Name) {
			c.addf(joinPath(at, "delegate.name"), "%q is not a VirtualService name", r.Delegate.Name)
		}
		if ns := r.Delegate.Namespace; ns != "" && !IsDNSLabel(ns) {
			c.addf(joinPath(at, "delegate.namespace"), "%q is not a namespace name", ns)
		}
		return
	}
	if delegate && r.Delegate != nil {
		c.addf(joinPath(at, "delegate"), "delegate HTTP route cannot contain delegate")
	}
	switch {
	case r.Redirect != nil:
		if len(r.Route) > 0 {
			c.addf(at, "HTTP route cannot contain both route and redirect")
		}
		if r.Fault != nil {
			c.addf(at, "HTTP route cannot contain both fault and redirect")
		}
		if r.Rewrite != nil {
			c.addf(at, "HTTP route rule cannot contain both rewrite and redirect")
		}
		if r.DirectResponse != nil {
			c.addf(at, "HTTP route rule cannot contain both direct_response and redirect")
		}
	case r.DirectResponse != nil:
		if len(r.Route) > 0 {
			c.addf(at, "HTTP route cannot contain both route and direct_response")
		}
		if r.Fault != nil {
			c.addf(at, "HTTP route cannot contain both fault and direct_response")
		}
		if r.Rewrite != nil {
			c.addf(at, "HTTP route rule cannot contain both rewrite and direct_response")
		}
	case len(r.Route) == 0:
		c.addf(joinPath(at, "route"), "HTTP route, redirect or direct_response is required")
	}
	if r.Mirror != nil && len(r.Mirrors) > 0 {
		c.addf(at, "HTTP route cannot contain both mirror and mirrors")
	}
}

// checkHTTPMatch is validateHTTPRouteMatchRequest for one match. Stricter than Istio: a null
// match (Istio skips it, and panics on it beside a redirect's prefixRewrite) is refused.
func checkHTTPMatch(c *specCheck, at string, m *networking.HTTPMatchRequest) {
	if m == nil {
		c.addf(at, "match may not be null")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		hat := keyPath(joinPath(at, "headers"), k)
		if m.Headers[k] == nil {
			c.addf(hat, "header match %v cannot be null", k)
		}
		c.add(hat, checkMatchHeaderName(k))
		checkStringMatch(c, hat, m.Headers[k], false)
	}
	for _, k := range slices.Sorted(maps.Keys(m.WithoutHeaders)) {
		hat := keyPath(joinPath(at, "withoutHeaders"), k)
		c.add(hat, checkMatchHeaderName(k))
		// A regex "*" is not RE2: Istio takes it to mean "header present".
		if h := m.WithoutHeaders[k]; h != nil && h.GetRegex() != "*" {
			checkStringMatch(c, hat, h, false)
		}
	}
	checkStringMatch(c, joinPath(at, "uri"), m.Uri, true)
	checkStringMatch(c, joinPath(at, "scheme"), m.Scheme, false)
	checkStringMatch(c, joinPath(at, "method"), m.Method, false)
	checkStringMatch(c, joinPath(at, "authority"), m.Authority, false)
	for _, k := range slices.Sorted(maps.Keys(m.QueryParams)) {
		checkStringMatch(c, keyPath(joinPath(at, "queryParams"), k), m.QueryParams[k], false)
	}
	if m.Port != 0 {
		c.add(joinPath(at, "port"), checkPort(m.Port))
	}
	checkLabelsAt(c, joinPath(at, "sourceLabels"), m.SourceLabels)
	checkGatewayNames(c, joinPath(at, "gateways"), m.Gateways)
	if m.SourceNamespace != "" && !IsDNS1123Label(m.SourceNamespace) {
		c.addf(joinPath(at, "sourceNamespace"), "sourceNamespace match %q is invalid", m.SourceNamespace)
	}
}

// corsMethods are the methods Istio accepts in allowMethods.
var corsMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}

// checkCORS is validateCORSPolicy. Stricter than Istio: a null origin is refused (Istio panics).
func checkCORS(c *specCheck, at string, p *networking.CorsPolicy) {
	if p == nil {
		return
	}
	for i, o := range p.AllowOrigins {
		oat := indexPath(joinPath(at, "allowOrigins"), i)
		var s string
		switch m := o.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			s = m.Exact
		case *networking.StringMatch_Prefix:
			s = m.Prefix
		case *networking.StringMatch_Regex:
			s = m.Regex
			if s != "" {
				c.add(joinPath(oat, "regex"), checkRegex(s))
			}
		}
		if s == "" {
			c.addf(oat, "an allowed origin needs a non-empty exact, prefix or regex")
		}
	}
	for i, m := range p.AllowMethods {
		if !slices.Contains(corsMethods, m) {
			c.addf(indexPath(joinPath(at, "allowMethods"), i), "%q is not a supported HTTP method", m)
		}
	}
	for i, h := range p.AllowHeaders {
		c.add(indexPath(joinPath(at, "allowHeaders"), i), checkCORSHeaderName(h))
	}
	for i, h := range p.ExposeHeaders {
		c.add(indexPath(joinPath(at, "exposeHeaders"), i), checkCORSHeaderName(h))
	}
	if p.MaxAge != nil {
		c.add(joinPath(at, "maxAge"), checkDuration(p.MaxAge))
		if p.MaxAge.Nanos > 0 {
			c.addf(joinPath(at, "maxAge"), "max_age duration is accurate only to seconds precision")
		}
	}
}

// grpcStatuses are the status names Istio accepts in an abort's grpcStatus.
var grpcStatuses = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// checkFault is validateHTTPFaultInjection. Stricter than Istio: an abort without httpStatus or
// grpcStatus (Istio warns), a delay without fixedDelay (Istio injects nothing) and a deprecated
// delay percent outside 0..100 are refused.
func checkFault(c *specCheck, at string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		c.addf(at, "HTTP fault injection must have an abort and/or a delay")
	}
	if a := f.Abort; a != nil {
		aat := joinPath(at, "abort")
		c.add(joinPath(aat, "percentage"), checkPercentage(a.Percentage))
		switch t := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !slices.Contains(grpcStatuses, t.GrpcStatus) {
				c.addf(joinPath(aat, "grpcStatus"), "gRPC status %q is not supported, use one of %s", t.GrpcStatus, strings.Join(grpcStatuses, ", "))
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			c.addf(joinPath(aat, "http2Error"), "HTTP/2 abort fault injection not supported yet")
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			c.add(joinPath(aat, "httpStatus"), checkHTTPStatus(int64(t.HttpStatus)))
		default:
			c.addf(aat, "abort configured, but error type not set (httpStatus or grpcStatus)")
		}
	}
	if d := f.Delay; d != nil {
		dat := joinPath(at, "delay")
		c.add(joinPath(dat, "percentage"), checkPercentage(d.Percentage))
		//lint:ignore SA1019 deprecated, still honoured by Istio
		c.add(joinPath(dat, "percent"), checkPercentInt(d.Percent))
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			c.add(joinPath(dat, "fixedDelay"), checkDuration(t.FixedDelay))
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			c.addf(joinPath(dat, "exponentialDelay"), "exponentialDelay not supported yet")
		default:
			c.addf(dat, "delay configured, but fixedDelay not set")
		}
	}
}

func checkHTTPStatus(s int64) error {
	if s < 200 || s > 600 {
		return fmt.Errorf("HTTP status %d is not in range 200-599", s)
	}
	return nil
}

// checkMirrorPercentage: 0 to 100 (NaN refused, which Istio lets through).
func checkMirrorPercentage(v float64) error {
	if !(v >= 0 && v <= 100) {
		return fmt.Errorf("mirror percentage must be in the range 0..100 (it has %v)", v)
	}
	return nil
}

// checkRedirect is validateHTTPRedirect. (Istio stops at the first problem; we list them all.)
func checkRedirect(c *specCheck, at string, r *networking.HTTPRedirect, matches []*networking.HTTPMatchRequest) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		c.addf(at, "redirect may only specify one of uri or prefix_rewrite")
	}
	if r.PrefixRewrite != "" {
		for _, m := range matches {
			if _, prefix := m.GetUri().GetMatchType().(*networking.StringMatch_Prefix); m.GetUri() != nil && !prefix {
				c.addf(joinPath(at, "prefixRewrite"), "redirect prefix_rewrite requires all URI matches to use prefix match type")
				break
			}
		}
	}
	if r.Uri == "" && r.PrefixRewrite == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" {
		c.addf(at, "redirect must specify URI, authority, scheme, or port")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		c.addf(joinPath(at, "redirectCode"), "%d is not a valid redirect code, must be 3xx", r.RedirectCode)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		c.addf(joinPath(at, "scheme"), `invalid redirect scheme, must be "http" or "https"`)
	}
	if r.GetPort() > 0 {
		c.add(joinPath(at, "port"), checkPort(r.GetPort()))
	}
}

// checkDirectResponse is validateHTTPDirectResponse: a status 200-600, a body under 1 MiB.
func checkDirectResponse(c *specCheck, at string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	if n := len(d.GetBody().GetString_()) + len(d.GetBody().GetBytes()); n > 1<<20 {
		c.addf(joinPath(at, "body"), "large direct_responses may impact control plane performance, must be less than 1MB")
	}
	c.add(joinPath(at, "status"), checkHTTPStatus(int64(d.Status)))
}

// retryOnPolicies are the retryOn conditions Envoy knows, besides HTTP status codes.
var retryOnPolicies = []string{"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
	"refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited", "http3-post-connect-failure",
	"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// checkRetries is validateHTTPRetry. Stricter than Istio: a status code in retryOn must be plain
// digits (Istio's strconv.Atoi also takes "+503").
func checkRetries(c *specCheck, at string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		c.addf(joinPath(at, "attempts"), "attempts cannot be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		c.addf(joinPath(at, "attempts"), "http retry policy configured when attempts are set to 0 (disabled)")
	}
	checkDurationAt(c, joinPath(at, "perTryTimeout"), r.PerTryTimeout)
	if r.RetryOn != "" {
		for p := range strings.SplitSeq(r.RetryOn, ",") {
			code, err := strconv.Atoi(p)
			if !(err == nil && allDigits(p) && http.StatusText(code) != "") && !slices.Contains(retryOnPolicies, p) {
				c.addf(joinPath(at, "retryOn"), "%q is not a valid retryOn policy", p)
			}
		}
	}
	checkDurationAt(c, joinPath(at, "backoff"), r.Backoff)
}

// checkRewrite is validateHTTPRewrite.
func checkRewrite(c *specCheck, at string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.UriRegexRewrite != nil {
		c.addf(at, "rewrite may only contain one of URI or UriRegexRewrite")
	}
	if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
		c.addf(at, "rewrite must specify at least one of URI, UriRegexRewrite, or authority")
	}
	if re := r.UriRegexRewrite; re != nil {
		if re.Match == "" || re.Rewrite == "" {
			c.addf(joinPath(at, "uriRegexRewrite"), "UriRegexRewrite requires both Rewrite and Match fields to be specified")
		}
		if re.Match != "" {
			c.add(joinPath(at, "uriRegexRewrite.match"), checkRegex(re.Match))
		}
	}
}

// checkAuthorityRewrite is validateAuthorityRewrite: the authority is rewritten in one place
// only. Stricter than Istio: two places count even when one sets an empty value.
func checkAuthorityRewrite(c *specCheck, at string, r *networking.HTTPRoute) {
	n := 0
	if r.GetRewrite().GetAuthority() != "" {
		n++
	}
	for _, m := range []map[string]string{r.GetHeaders().GetRequest().GetSet(), r.GetHeaders().GetRequest().GetAdd()} {
		for k := range m {
			if isAuthorityHeader(k) {
				n++
			}
		}
	}
	if n > 1 {
		c.addf(at, "authority header cannot be set multiple times (rewrite.authority, headers.request set/add of host or :authority)")
	}
}

// checkHTTPRouteDestinations is validateHTTPRouteDestinations, with checkWeights.
func checkHTTPRouteDestinations(c *specCheck, at string, ds []*networking.HTTPRouteDestination) {
	weights := make([]weighted, 0, len(ds))
	for k, d := range ds {
		dat := indexPath(at, k)
		if d == nil {
			c.addf(dat, "weight may not be nil")
			continue
		}
		if d.Destination == nil {
			c.addf(joinPath(dat, "destination"), "destination is required")
		}
		checkHeaderOps(c, joinPath(dat, "headers"), d.Headers)
		checkDestination(c, joinPath(dat, "destination"), d.Destination)
		weights = append(weights, weighted{k, d.Weight})
	}
	checkWeights(c, at, len(ds), weights)
}
