package rules

import (
	"fmt"
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
)

// condRoutes builds the routes of a conditions section (Dubbo condition rules, mesh rules), in
// order. A route whose destinations have no live instance is left out, so its requests fall
// through to the next route (Dubbo ignores a condition whose filter leaves no provider) unless
// the rule forces it: then it fails them with abortStatus, as Dubbo fails a forced route with no
// provider. A deny route fails its requests with denyStatus.
func condRoutes(p *policy, cond *compiled, liveOf func(string) int, dest func(string) *networking.Destination,
	defDests func() []*networking.HTTPRouteDestination) []*networking.HTTPRoute {
	var routes []*networking.HTTPRoute
	fault := func(status int32) *networking.HTTPFaultInjection {
		return &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
			ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: status}, Percentage: &networking.Percent{Value: 100}}}
	}
	for i, r := range cond.Conditions.Routes {
		rt := &networking.HTTPRoute{Name: fmt.Sprintf("cond-%d", i), Match: istioMatches(r.Match)}
		switch {
		case r.Deny:
			rt.Fault, rt.Route = fault(denyStatus), defDests()
			p.http = append(p.http, fmt.Sprintf("%s (rule %s %s): fail with %d", r.Desc, cond.Name, r.Clause, denyStatus))
		default:
			var live []weighted
			total := int32(0)
			for _, d := range r.Dests {
				name := d.Subset
				if name == "" {
					name = condSubsetName(d.Labels)
				}
				if liveOf(name) > 0 {
					live = append(live, weighted{name, max(d.Weight, 0)})
					total += max(d.Weight, 0)
				}
			}
			if len(live) == 0 {
				if !r.Force {
					p.http = append(p.http, fmt.Sprintf("%s (rule %s %s): no live instance, left out (requests fall through, as Dubbo ignores it)", r.Desc, cond.Name, r.Clause))
					continue
				}
				rt.Fault, rt.Route = fault(abortStatus), defDests()
				p.http = append(p.http, fmt.Sprintf("%s (rule %s %s): no live instance and force -> fail with %d", r.Desc, cond.Name, r.Clause, abortStatus))
				break
			}
			for _, w := range normalize(live, total) {
				rt.Route = append(rt.Route, &networking.HTTPRouteDestination{Destination: dest(w.subset), Weight: w.weight})
			}
			p.http = append(p.http, fmt.Sprintf("%s (rule %s %s) -> %s", r.Desc, cond.Name, r.Clause, describe(normalize(live, total))))
		}
		routes = append(routes, rt)
	}
	return routes
}

// normalize makes weights Istio accepts: one destination has none; several sum to 100 (equal
// shares when none was given), the remainder to the first.
func normalize(ws []weighted, total int32) []weighted {
	out := slices.Clone(ws)
	if len(out) == 1 {
		out[0].weight = 0
		return out
	}
	if total == 0 {
		for i := range out {
			out[i].weight = 1
		}
		total = int32(len(out))
	}
	sum := int32(0)
	for i := range out {
		out[i].weight = out[i].weight * 100 / total
		sum += out[i].weight
	}
	out[0].weight += 100 - sum
	return slices.DeleteFunc(out, func(w weighted) bool { return w.weight == 0 })
}

func istioMatches(ms []HTTPMatch) []*networking.HTTPMatchRequest {
	var out []*networking.HTTPMatchRequest
	sm := func(m StringMatch) *networking.StringMatch {
		switch {
		case m.Exact != "":
			return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: m.Exact}}
		case m.Prefix != "":
			return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: m.Prefix}}
		}
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: m.Regex}}
	}
	for _, m := range ms {
		mr := &networking.HTTPMatchRequest{SourceLabels: maps.Clone(m.SourceLabels)}
		if m.URIRegex != "" {
			mr.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: m.URIRegex}}
		}
		for _, h := range slices.Sorted(maps.Keys(m.Headers)) {
			if mr.Headers == nil {
				mr.Headers = map[string]*networking.StringMatch{}
			}
			mr.Headers[h] = sm(m.Headers[h])
		}
		for _, h := range slices.Sorted(maps.Keys(m.WithoutHeaders)) {
			if mr.WithoutHeaders == nil {
				mr.WithoutHeaders = map[string]*networking.StringMatch{}
			}
			mr.WithoutHeaders[h] = sm(m.WithoutHeaders[h])
		}
		out = append(out, mr)
	}
	return out
}
