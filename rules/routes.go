package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// abortStatus is what strict lanes and forced tags answer when no instance may serve: HTTP 503,
// which gRPC clients see as UNAVAILABLE.
const abortStatus = 503

// httpRoutes builds the HTTP/gRPC routes, first match wins: lanes, then tags, then canary
// matches, then the default route.
func (e *Engine) httpRoutes(p *policy, lane, tag, canary, cond, res *compiled, laneVals, tagVals []string, def []weighted,
	liveOf func(string) int, dest func(string) *networking.Destination) []*networking.HTTPRoute {
	var routes []*networking.HTTPRoute
	defDests := func() []*networking.HTTPRouteDestination {
		var out []*networking.HTTPRouteDestination
		for _, w := range def {
			out = append(out, &networking.HTTPRouteDestination{Destination: dest(w.subset), Weight: w.weight})
		}
		return out
	}
	header := func(name string, m *networking.StringMatch) []*networking.HTTPMatchRequest {
		return []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{name: m}}}
	}
	exact := func(v string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: v}}
	}
	present := &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: ".+"}}
	abort := &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
		ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: abortStatus}, Percentage: &networking.Percent{Value: 100}}}
	if lane != nil {
		l := lane.Lanes
		for _, v := range laneVals {
			name := "lane-" + slug(v, 50)
			routes = append(routes, &networking.HTTPRoute{Name: name, Match: header(l.Header, exact(v)),
				Route: []*networking.HTTPRouteDestination{{Destination: dest(name)}}})
			p.http = append(p.http, fmt.Sprintf("%s: %s -> subset %s", l.Header, v, name))
		}
		if l.Mode == LaneModeStrict {
			routes = append(routes, &networking.HTTPRoute{Name: "lane-strict", Match: header(l.Header, present), Fault: abort, Route: defDests()})
			p.http = append(p.http, fmt.Sprintf("%s: any other lane -> fail with %d (strict lanes)", l.Header, abortStatus))
		}
	}
	if tag != nil {
		t := tag.TagRouting
		for _, v := range tagVals {
			name := "tag-" + slug(v, 50)
			routes = append(routes, &networking.HTTPRoute{Name: name, Match: header(t.Header, exact(v)),
				Route: []*networking.HTTPRouteDestination{{Destination: dest(name)}}})
			p.http = append(p.http, fmt.Sprintf("%s: %s -> subset %s", t.Header, v, name))
		}
		if t.Force {
			routes = append(routes, &networking.HTTPRoute{Name: "tag-forced", Match: header(t.Header, present), Fault: abort, Route: defDests()})
			p.http = append(p.http, fmt.Sprintf("%s: a tag no live instance carries -> fail with %d (force)", t.Header, abortStatus))
		} else {
			if t.ForceHeader != "" {
				routes = append(routes, &networking.HTTPRoute{Name: "tag-forced-request", Fault: abort, Route: defDests(),
					Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{t.Header: present, t.ForceHeader: exact("true")}}}})
				p.http = append(p.http, fmt.Sprintf("%s: a tag no live instance carries, with %s: true -> fail with %d (forced by the request)", t.Header, t.ForceHeader, abortStatus))
			}
			p.http = append(p.http, fmt.Sprintf("%s: a tag no live instance carries -> falls back to the default route", t.Header))
		}
	}
	if cond != nil {
		routes = append(routes, condRoutes(p, cond, liveOf, dest, defDests)...)
	}
	canaryLive := canary != nil && liveOf("canary") > 0
	if canaryLive && len(canary.Canary.Match) > 0 {
		var ms []*networking.HTTPMatchRequest
		var descs []string
		for i, m := range canary.Canary.Match {
			mr, d := matchRequest(m, canary.modulos[i])
			ms = append(ms, mr)
			descs = append(descs, d)
		}
		routes = append(routes, &networking.HTTPRoute{Name: "canary-match", Match: ms, Route: []*networking.HTTPRouteDestination{{Destination: dest("canary")}}})
		p.http = append(p.http, strings.Join(descs, " or ")+" -> subset canary")
	}
	d := &networking.HTTPRoute{Name: "default", Route: defDests()}
	desc := "default -> " + describe(def)
	if canaryLive && canary.Canary.MirrorPercent > 0 && def[0].subset != "canary" {
		d.Mirror = dest("canary")
		d.MirrorPercentage = &networking.Percent{Value: canary.Canary.MirrorPercent}
		desc += fmt.Sprintf(", mirroring %v%% to subset canary", canary.Canary.MirrorPercent)
	}
	routes = append(routes, keepRoutes(p, append(slices.Clone(routes), d), dest)...)
	routes = append(routes, d)
	p.http = append(p.http, desc)
	if res != nil {
		r := res.Resilience
		for _, rt := range routes {
			if r.Timeout != "" {
				rt.Timeout = duration(r.Timeout)
			}
			if r.Retries != nil {
				rt.Retries = &networking.HTTPRetry{Attempts: r.Retries.Attempts, PerTryTimeout: duration(r.Retries.PerTryTimeout), RetryOn: r.Retries.RetryOn}
			}
		}
		if r.Timeout != "" || r.Retries != nil {
			p.http = append(p.http, fmt.Sprintf("every route: timeout %s, retries %s (rule %s)", cmpOr(r.Timeout, "none"), retriesText(r.Retries), res.Name))
		}
	}
	return routes
}

// keepHeader is the header of the keep routes; their regex never matches any value.
const (
	keepHeader = "x-mcp-bridge-keep"
	keepNever  = `[^\s\S]`
)

// keepRoutes references every routed subset no route of routes names (a stale subset, an empty
// canary) from a route no request matches. A proxyless gRPC client watches only the clusters its
// routes name: without this, a subset whose instances return comes back as a cluster the client
// has never seen, and for a few milliseconds RPCs the restored route sends there fail with
// "unknown cluster selected for RPC" (seen in TestBridgeRulesZooKeeper's tag changes). Subsets of
// the subsets kind are left alone: no route of the engine names them.
func keepRoutes(p *policy, routes []*networking.HTTPRoute, dest func(string) *networking.Destination) []*networking.HTTPRoute {
	named := map[string]bool{}
	for _, rt := range routes {
		for _, rd := range rt.Route {
			named[rd.GetDestination().GetSubset()] = true
		}
		named[rt.GetMirror().GetSubset()] = true
	}
	var out []*networking.HTTPRoute
	for _, d := range p.subsets {
		if named[d.Name] || d.From == SectionSubsets {
			continue
		}
		out = append(out, &networking.HTTPRoute{
			Name:  "keep-" + d.Name,
			Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{keepHeader: {MatchType: &networking.StringMatch_Regex{Regex: keepNever}}}}},
			Route: []*networking.HTTPRouteDestination{{Destination: dest(d.Name)}},
		})
		p.http = append(p.http, fmt.Sprintf("subset %s: named by a route no request matches (%s ~ %s), so proxyless clients keep its cluster for when instances return", d.Name, keepHeader, keepNever))
	}
	return out
}

func retriesText(r *Retries) string {
	if r == nil {
		return "default"
	}
	return fmt.Sprintf("%d attempts, per try %s, on %s", r.Attempts, cmpOr(r.PerTryTimeout, "-"), cmpOr(r.RetryOn, "default"))
}

func duration(s string) *durationpb.Duration {
	if s == "" {
		return nil
	}
	d, _ := time.ParseDuration(s) // validated by compile
	return durationpb.New(d)
}

// matchRequest turns one canary match into an Istio match (all its conditions ANDed).
func matchRequest(m CanaryMatch, mod *Modulo) (*networking.HTTPMatchRequest, string) {
	mr := &networking.HTTPMatchRequest{}
	var d []string
	for _, h := range slices.Sorted(maps.Keys(m.Headers)) {
		sm := m.Headers[h]
		if mr.Headers == nil {
			mr.Headers = map[string]*networking.StringMatch{}
		}
		switch {
		case sm.Exact != "":
			mr.Headers[h] = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: sm.Exact}}
			d = append(d, fmt.Sprintf("%s = %q", h, sm.Exact))
		case sm.Prefix != "":
			mr.Headers[h] = &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: sm.Prefix}}
			d = append(d, fmt.Sprintf("%s starts with %q", h, sm.Prefix))
		default:
			mr.Headers[h] = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: sm.Regex}}
			d = append(d, fmt.Sprintf("%s ~ %s", h, sm.Regex))
		}
	}
	if mod != nil {
		if mr.Headers == nil {
			mr.Headers = map[string]*networking.StringMatch{}
		}
		mr.Headers[mod.Header] = &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: mod.Regex()}}
		d = append(d, fmt.Sprintf("%s %% %d in [%d, %d]", mod.Header, mod.Divisor, mod.Lo, mod.Hi))
	}
	if g := m.GRPC; g != nil {
		if g.Method != "" {
			mr.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: "/" + g.Service + "/" + g.Method}}
		} else {
			mr.Uri = &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/" + g.Service + "/"}}
		}
		d = append(d, "gRPC "+strings.TrimSuffix(g.Service+"/"+g.Method, "/"))
	}
	if len(m.SourceLabels) > 0 {
		mr.SourceLabels = maps.Clone(m.SourceLabels)
		d = append(d, fmt.Sprintf("source labels %v", m.SourceLabels))
	}
	return mr, strings.Join(d, " and ")
}

// destinationRule builds the service's DestinationRule, nil when it needs none.
func (e *Engine) destinationRule(p *policy, en *entry, host string) *networking.DestinationRule {
	dr := &networking.DestinationRule{Host: host}
	for _, s := range p.subsets {
		dr.Subsets = append(dr.Subsets, &networking.Subset{Name: s.Name, Labels: s.Labels})
	}
	tp := &networking.TrafficPolicy{}
	var lb *networking.LoadBalancerSettings
	if c := en.win[SectionResilience]; c != nil {
		r := c.Resilience
		if cp := r.ConnectionPool; cp != nil {
			tp.ConnectionPool = &networking.ConnectionPoolSettings{}
			if cp.MaxConnections > 0 || cp.ConnectTimeout != "" {
				tp.ConnectionPool.Tcp = &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: cp.MaxConnections, ConnectTimeout: duration(cp.ConnectTimeout)}
			}
			if cp.MaxPendingRequests > 0 || cp.MaxRequests > 0 || cp.MaxRequestsPerConnection > 0 || cp.MaxRetries > 0 {
				tp.ConnectionPool.Http = &networking.ConnectionPoolSettings_HTTPSettings{Http1MaxPendingRequests: cp.MaxPendingRequests,
					Http2MaxRequests: cp.MaxRequests, MaxRequestsPerConnection: cp.MaxRequestsPerConnection, MaxRetries: cp.MaxRetries}
			}
		}
		if od := r.OutlierDetection; od != nil {
			tp.OutlierDetection = outlier(od)
		}
		if l := r.LoadBalancer; l != nil {
			lb = &networking.LoadBalancerSettings{}
			if ch := l.ConsistentHash; ch != nil {
				c := &networking.LoadBalancerSettings_ConsistentHashLB{}
				switch {
				case ch.Header != "":
					c.HashKey = &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: ch.Header}
				case ch.Cookie != "":
					c.HashKey = &networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie{HttpCookie: &networking.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{Name: ch.Cookie, Ttl: durationpb.New(0)}}
				default:
					c.HashKey = &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}
				}
				lb.LbPolicy = &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: c}
			} else {
				lb.LbPolicy = &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_SimpleLB(networking.LoadBalancerSettings_SimpleLB_value[l.Simple])}
			}
		}
	}
	if c := en.win[SectionLocality]; c != nil {
		l := c.Locality
		if lb == nil {
			lb = &networking.LoadBalancerSettings{}
		}
		ls := &networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(true), FailoverPriority: l.FailoverPriority}
		for _, f := range l.Failover {
			ls.Failover = append(ls.Failover, &networking.LocalityLoadBalancerSetting_Failover{From: f.From, To: f.To})
		}
		for _, d := range l.Distribute {
			ls.Distribute = append(ls.Distribute, &networking.LocalityLoadBalancerSetting_Distribute{From: d.From, To: maps.Clone(d.To)})
		}
		lb.LocalityLbSetting = ls
		if tp.OutlierDetection == nil {
			// Istio applies locality failover only with outlier detection: without it, an
			// unhealthy local endpoint is never ejected and traffic never moves.
			tp.OutlierDetection = outlier(&OutlierDetection{Consecutive5xxErrors: 5, Interval: "10s", BaseEjectionTime: "30s"})
			p.notes = append(p.notes, fmt.Sprintf("locality (rule %s): outlier detection added (5 consecutive 5xx, every 10s, ejected 30s): Istio fails over between localities only with it", c.Name))
		}
	}
	if lb != nil {
		tp.LoadBalancer = lb
	}
	if tp.ConnectionPool != nil || tp.OutlierDetection != nil || tp.LoadBalancer != nil {
		dr.TrafficPolicy = tp
	}
	if len(dr.Subsets) == 0 && dr.TrafficPolicy == nil {
		return nil
	}
	return dr
}

func outlier(od *OutlierDetection) *networking.OutlierDetection {
	o := &networking.OutlierDetection{Interval: duration(od.Interval), BaseEjectionTime: duration(od.BaseEjectionTime), MaxEjectionPercent: od.MaxEjectionPercent}
	if od.Consecutive5xxErrors > 0 {
		o.Consecutive_5XxErrors = wrapperspb.UInt32(od.Consecutive5xxErrors)
	}
	return o
}
