package istio

import (
	"maps"
	"math"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
)

// VirtualService rules: Istio's ValidateVirtualService (pkg/config/validation validation.go and
// virtualservice.go). Istio's warnings (unreachable rules, legacy gateway names) are not
// reported. The internal route-semantics annotation that relaxes some rules for Gateway API
// routes is refused with the other internal annotations (resource.go), so these rules always
// apply in full.
var virtualServiceRules = []func(*networking.VirtualService, *specCheck){
	vsDelegate,
	func(vs *networking.VirtualService, c *specCheck) { checkGatewayNames(c, "gateways", vs.Gateways) },
	vsHosts,
	vsJWTClaims,
	vsRoutes,
	func(vs *networking.VirtualService, c *specCheck) {
		checkExportTo(c, "exportTo", vs.ExportTo, exportConfig)
	},
}

// boundToGateways reports whether a VirtualService applies to gateways only, not to sidecars
// (Istio's isGateway with gateways listed).
func boundToGateways(vs *networking.VirtualService) bool {
	return len(vs.Gateways) > 0 && !slices.Contains(vs.Gateways, "mesh")
}

// vsDelegate: a VirtualService without hosts is a delegate, which only HTTP routes of another
// VirtualService use.
func vsDelegate(vs *networking.VirtualService, c *specCheck) {
	if len(vs.Hosts) > 0 {
		return
	}
	if len(vs.Gateways) > 0 {
		c.addf("gateways", "delegate virtual service (one without hosts) must have no gateways specified")
	}
	if len(vs.Tls) > 0 {
		c.addf("tls", "delegate virtual service (one without hosts) must have no tls route specified")
	}
	if len(vs.Tcp) > 0 {
		c.addf("tcp", "delegate virtual service (one without hosts) must have no tcp route specified")
	}
}

// vsHosts: each host a (wildcard) domain or an IP address, "*" only for gateways, no two hosts
// overlapping. Stricter than Istio: the auto-generated "outbound_.<port>_._.<host>" SNI form
// that Istio accepts for gateways is refused, and so are IPv6 zones.
func vsHosts(vs *networking.VirtualService, c *specCheck) {
	valid := true
	for i, h := range vs.Hosts {
		if err := checkWildcardDomain(h); err != nil {
			if !isIP(h) {
				c.add(indexPath("hosts", i), err)
				valid = false
			}
		} else if h == "*" && !boundToGateways(vs) {
			c.addf(indexPath("hosts", i), "wildcard host * is not allowed for virtual services bound to the mesh gateway")
			valid = false
		}
	}
	if !valid {
		return
	}
	for i := range vs.Hosts {
		for j := i + 1; j < len(vs.Hosts); j++ {
			if matchesHost(vs.Hosts[i], vs.Hosts[j]) {
				c.addf(indexPath("hosts", j), "duplicate hosts in virtual service: %s & %s", vs.Hosts[i], vs.Hosts[j])
			}
		}
	}
}

// vsJWTClaims: routing on JWT claims works at gateways only.
func vsJWTClaims(vs *networking.VirtualService, c *specCheck) {
	if boundToGateways(vs) {
		return
	}
	for i, r := range vs.Http {
		for j, m := range r.GetMatch() {
			at := indexPath(indexPath("http", i)+".match", j)
			for _, field := range []struct {
				name    string
				headers map[string]*networking.StringMatch
			}{{"headers", m.GetHeaders()}, {"withoutHeaders", m.GetWithoutHeaders()}} {
				for _, k := range slices.Sorted(maps.Keys(field.headers)) {
					if isJWTClaimRoute(k) {
						c.addf(keyPath(joinPath(at, field.name), k), "JWT claim based routing is only supported for gateways, found no gateways: %v", vs.Gateways)
					}
				}
			}
		}
	}
}

func vsRoutes(vs *networking.VirtualService, c *specCheck) {
	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		c.addf("", "http, tcp or tls must be provided in virtual service")
	}
	for i, r := range vs.Http {
		if r == nil {
			c.addf(indexPath("http", i), "http route may not be null")
			continue
		}
		checkHTTPRoute(c, indexPath("http", i), r, len(vs.Hosts) == 0)
	}
	for i, r := range vs.Tls {
		checkTLSRoute(c, indexPath("tls", i), r, vs)
	}
	for i, r := range vs.Tcp {
		checkTCPRoute(c, indexPath("tcp", i), r)
	}
}

// checkTLSRoute is validateTLSRoute. Stricter than Istio: a null route, an SNI host that is an
// IP address (Istio warns that clients do not send those) and a bad sourceNamespace are refused.
func checkTLSRoute(c *specCheck, at string, r *networking.TLSRoute, vs *networking.VirtualService) {
	if r == nil {
		c.addf(at, "tls route may not be null")
		return
	}
	if len(r.Match) == 0 {
		c.addf(joinPath(at, "match"), "TLS route must have at least one match condition")
	}
	for j, m := range r.Match {
		mat := indexPath(joinPath(at, "match"), j)
		if m == nil {
			c.addf(mat, "TLS match may not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			c.addf(joinPath(mat, "sniHosts"), "TLS match must have at least one SNI host")
		}
		for k, sni := range m.SniHosts {
			sat := indexPath(joinPath(mat, "sniHosts"), k)
			if err := checkWildcardDomain(sni); err != nil {
				c.add(sat, err)
				continue
			}
			if !slices.ContainsFunc(vs.Hosts, func(h string) bool { return subsetOfHost(sni, h) }) {
				c.addf(sat, "SNI host %q is not a compatible subset of any of the virtual service hosts: %v", sni, vs.Hosts)
			}
		}
		checkL4Match(c, mat, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace)
	}
	if len(r.Route) == 0 {
		c.addf(joinPath(at, "route"), "TLS route is required")
	}
	checkRouteDestinations(c, joinPath(at, "route"), r.Route)
}

// checkTCPRoute is validateTCPRoute, stricter as checkTLSRoute is.
func checkTCPRoute(c *specCheck, at string, r *networking.TCPRoute) {
	if r == nil {
		c.addf(at, "tcp route may not be null")
		return
	}
	for j, m := range r.Match {
		mat := indexPath(joinPath(at, "match"), j)
		if m == nil {
			c.addf(mat, "tcp match may not be null")
			continue
		}
		checkL4Match(c, mat, m.DestinationSubnets, m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace)
	}
	if len(r.Route) == 0 {
		c.addf(joinPath(at, "route"), "TCP route is required")
	}
	checkRouteDestinations(c, joinPath(at, "route"), r.Route)
}

// checkL4Match checks what TLS and TCP matches have in common.
func checkL4Match(c *specCheck, at string, subnets []string, port uint32, sourceLabels map[string]string, gateways []string, sourceNamespace string) {
	for k, s := range subnets {
		c.add(indexPath(joinPath(at, "destinationSubnets"), k), checkIPSubnet(s))
	}
	if port != 0 {
		c.add(joinPath(at, "port"), checkPort(port))
	}
	checkLabelsAt(c, joinPath(at, "sourceLabels"), sourceLabels)
	checkGatewayNames(c, joinPath(at, "gateways"), gateways)
	if sourceNamespace != "" && !IsDNS1123Label(sourceNamespace) {
		c.addf(joinPath(at, "sourceNamespace"), "sourceNamespace match %q is invalid", sourceNamespace)
	}
}

// checkRouteDestinations is validateRouteDestinations (TLS and TCP), with checkWeights.
func checkRouteDestinations(c *specCheck, at string, ds []*networking.RouteDestination) {
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
		checkDestination(c, joinPath(dat, "destination"), d.Destination)
		weights = append(weights, weighted{k, d.Weight})
	}
	checkWeights(c, at, len(ds), weights)
}

// weighted is the weight of the destination at index in its route.
type weighted struct {
	index  int
	weight int32
}

// checkWeights: no negative weight, and in a split of several destinations, not all zero
// (Istio's rules); stricter: the total must fit an int32 (Istio's sum overflows silently), and
// no destination of a split may have weight 0, the project's rule: Istio drops such a
// destination, and when its subset comes back, proxyless gRPC clients fail requests for a
// moment. Remove the destination instead, or keep its subset referenced from another route.
func checkWeights(c *specCheck, at string, destinations int, weights []weighted) {
	var total int64
	for _, w := range weights {
		if w.weight < 0 {
			c.addf(joinPath(indexPath(at, w.index), "weight"), "weight %d < 0", w.weight)
		}
		total += int64(w.weight)
	}
	switch {
	case destinations > 1 && total == 0:
		c.addf(at, "total destination weight = 0")
	case total > math.MaxInt32:
		c.addf(at, "total destination weight %d is more than %d", total, math.MaxInt32)
	case destinations > 1:
		for _, w := range weights {
			if w.weight == 0 {
				c.addf(joinPath(indexPath(at, w.index), "weight"), "weight 0 in a split: Istio drops the destination, and proxyless gRPC clients fail requests when it returns; remove it instead")
			}
		}
	}
}
