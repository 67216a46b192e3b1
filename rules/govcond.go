package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Dubbo condition rules: "<match> => <filter>", each side "key=v1,v2 & key2!=v3". The match side
// reads the consumer's request (method, attachments, arguments, the consumer's URL), the filter
// side the providers' URLs. What Istio can express:
//   - match: method -> the gRPC/Triple path (/<interface>/<method>), attachments[k] -> header k,
//     application (the consumer's) -> source label app; = with lists and '*' wildcards, != on
//     headers (withoutHeaders);
//   - filter: provider parameters with one exact value -> a subset by label; empty -> deny.
// Everything else is a problem that keeps the whole rule from being applied.

// condExpr is one side of a condition: key -> (negated, values).
type condTerm struct {
	key    string
	neg    bool
	values []string
}

// parseSide splits "a=1,2 & b!=3" into terms. An empty side has no terms.
func parseSide(side string) ([]condTerm, error) {
	side = strings.TrimSpace(side)
	if side == "" {
		return nil, nil
	}
	var out []condTerm
	for part := range strings.SplitSeq(side, "&") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("an empty term between '&'")
		}
		neg := false
		i := strings.Index(part, "!=")
		if i >= 0 {
			neg = true
		} else if i = strings.Index(part, "="); i < 0 {
			return nil, fmt.Errorf("term %q has no = or !=", part)
		}
		key := strings.TrimSpace(part[:i])
		rest := part[i+1:]
		if neg {
			rest = part[i+2:]
		}
		if key == "" {
			return nil, fmt.Errorf("term %q has no key", part)
		}
		var vals []string
		for v := range strings.SplitSeq(rest, ",") {
			if v = strings.TrimSpace(v); v != "" {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("term %q has no value", part)
		}
		out = append(out, condTerm{key: key, neg: neg, values: vals})
	}
	return out, nil
}

// splitCondition splits at "=>"; without one the whole condition is the filter (as Dubbo reads it).
func splitCondition(c string) (match, filter string) {
	if i := strings.Index(c, "=>"); i >= 0 {
		return c[:i], c[i+2:]
	}
	return "", c
}

var attachmentKey = regexp.MustCompile(`^attachments\[([^\]]+)\]$`)

// matchOf turns a match side into one Istio match. iface is the interface of a service-scoped
// rule ("" for an application scope: any interface).
func matchOf(terms []condTerm, iface string) (*HTTPMatch, []string, []string) {
	if len(terms) == 0 {
		return nil, []string{"all requests"}, nil
	}
	m := &HTTPMatch{}
	var desc, probs []string
	for _, t := range terms {
		if p := valueProblem(t); p != "" {
			probs = append(probs, p)
			continue
		}
		switch k := t.key; {
		case k == "method":
			if t.neg {
				probs = append(probs, fmt.Sprintf("method != %s: Istio cannot negate a path match", strings.Join(t.values, ",")))
				continue
			}
			svc := "[^/]+"
			if iface != "" {
				svc = regexp.QuoteMeta(iface)
			}
			m.URIRegex = "/" + svc + "/" + alternation(t.values)
			desc = append(desc, "method "+strings.Join(t.values, ","))
		case attachmentKey.MatchString(k):
			h := strings.ToLower(attachmentKey.FindStringSubmatch(k)[1])
			if !validHeader(h) {
				probs = append(probs, fmt.Sprintf("%s: %q is not a valid HTTP header name", k, h))
				continue
			}
			sm := headerMatch(t.values)
			if t.neg {
				if m.WithoutHeaders == nil {
					m.WithoutHeaders = map[string]StringMatch{}
				}
				m.WithoutHeaders[h] = sm
				desc = append(desc, fmt.Sprintf("header %s not %s", h, strings.Join(t.values, ",")))
			} else {
				if m.Headers == nil {
					m.Headers = map[string]StringMatch{}
				}
				m.Headers[h] = sm
				desc = append(desc, fmt.Sprintf("header %s = %s", h, strings.Join(t.values, ",")))
			}
		case k == "application" || k == "remote.application":
			if t.neg || len(t.values) != 1 || strings.Contains(t.values[0], "*") {
				probs = append(probs, fmt.Sprintf("%s: only one exact consumer application can become a source label (app)", k))
				continue
			}
			m.SourceLabels = map[string]string{"app": translate.SanitizeLabelValue(t.values[0])}
			desc = append(desc, "consumer app "+t.values[0])
		case strings.HasPrefix(k, "arguments["):
			probs = append(probs, fmt.Sprintf("%s: argument values are in the request body; Istio routes on paths and headers only", k))
		case k == "host" || k == "ip" || k == "address":
			probs = append(probs, fmt.Sprintf("%s: a consumer address has no source label Istio can match (sourceLabels select workloads, not hosts)", k))
		default:
			probs = append(probs, fmt.Sprintf("%s: a consumer URL parameter has no request header or source label in the mesh", k))
		}
	}
	return m, desc, probs
}

// valueProblem reports value forms Istio cannot compare: $references and ranges.
func valueProblem(t condTerm) string {
	for _, v := range t.values {
		if strings.HasPrefix(v, "$") {
			return fmt.Sprintf("%s: %q refers to another parameter's value; Istio compares with constants only", t.key, v)
		}
		if strings.Contains(v, "~") {
			return fmt.Sprintf("%s: the range %q is not translated (Istio has no numeric comparison)", t.key, v)
		}
	}
	return ""
}

// alternation is a regexp for any of the values, '*' matching any run of characters.
func alternation(vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\*`, ".*")
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(?:" + strings.Join(parts, "|") + ")"
}

func headerMatch(vals []string) StringMatch {
	if len(vals) == 1 && !strings.Contains(vals[0], "*") {
		return StringMatch{Exact: vals[0]}
	}
	if len(vals) == 1 && strings.Count(vals[0], "*") == 1 && strings.HasSuffix(vals[0], "*") && vals[0] != "*" {
		return StringMatch{Prefix: strings.TrimSuffix(vals[0], "*")}
	}
	return StringMatch{Regex: alternation(vals)}
}

func validHeader(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.", c)) {
			return false
		}
	}
	return true
}

// filterOf turns a filter side into the labels of one subset. Empty: deny.
func filterOf(terms []condTerm) (map[string]string, []string) {
	labels := map[string]string{}
	var probs []string
	for _, t := range terms {
		if p := valueProblem(t); p != "" {
			probs = append(probs, p)
			continue
		}
		switch {
		case t.key == "host" || t.key == "address" || t.key == "ip":
			probs = append(probs, fmt.Sprintf("%s: filtering providers by address is not translated (a subset selects labels, not addresses)", t.key))
		case t.key == "method" || strings.HasPrefix(t.key, "arguments[") || strings.HasPrefix(t.key, "attachments["):
			probs = append(probs, fmt.Sprintf("%s: a request attribute on the provider side of a condition has no Istio equivalent", t.key))
		case t.neg:
			probs = append(probs, fmt.Sprintf("%s != %s: an Istio subset selects instances that have a label value, never those that lack one", t.key, strings.Join(t.values, ",")))
		case len(t.values) > 1 || strings.Contains(t.values[0], "*"):
			probs = append(probs, fmt.Sprintf("%s = %s: a subset selects one exact label value (lists and wildcards are not translated)", t.key, strings.Join(t.values, ",")))
		default:
			k := labelKeyOf(t.key)
			if !validLabelKeyName(k) {
				probs = append(probs, fmt.Sprintf("%s: not a valid label key", t.key))
				continue
			}
			labels[k] = translate.SanitizeLabelValue(t.values[0])
		}
	}
	return labels, probs
}

// conditionRoutes translates a condition rule. Problems are "<clause>: <reason>".
func conditionRoutes(r *registry.Rule) ([]CondRoute, []GovProblem) {
	iface := ""
	if r.Service != nil {
		iface = r.Service.Interface
	}
	var routes []CondRoute
	var probs []GovProblem
	methods := [][]string{} // per route: the exact methods it is limited to (nil: not limited)
	add := func(clause string, match string, dests []condDestSpec, deny bool) {
		mt, err := parseSide(match)
		if err != nil {
			probs = append(probs, GovProblem{clause, "match side: " + err.Error()})
			return
		}
		m, desc, ps := matchOf(mt, iface)
		for _, p := range ps {
			probs = append(probs, GovProblem{clause, p})
		}
		cr := CondRoute{Clause: clause, Deny: deny, Force: r.Force}
		if m != nil {
			cr.Match = []HTTPMatch{*m}
		}
		var to []string
		for _, d := range dests {
			ft, err := parseSide(d.filter)
			if err != nil {
				probs = append(probs, GovProblem{clause, "filter side: " + err.Error()})
				return
			}
			if len(ft) == 0 {
				cr.Deny = true
				continue
			}
			labels, ps := filterOf(ft)
			for _, p := range ps {
				probs = append(probs, GovProblem{clause, p})
			}
			cr.Dests = append(cr.Dests, CondDest{Labels: labels, Weight: d.weight})
			to = append(to, strings.TrimSpace(d.filter))
		}
		if cr.Deny {
			cr.Dests = nil
			cr.Desc = strings.Join(desc, " and ") + " -> deny"
		} else {
			cr.Desc = strings.Join(desc, " and ") + " -> " + strings.Join(to, " | ")
		}
		var ms []string
		for _, t := range mt {
			if t.key == "method" && !t.neg && !slices.ContainsFunc(t.values, func(v string) bool { return strings.Contains(v, "*") }) {
				ms = t.values
			}
		}
		for i, prev := range methods {
			if prev == nil || ms == nil || slices.ContainsFunc(ms, func(v string) bool { return slices.Contains(prev, v) }) {
				probs = append(probs, GovProblem{clause, fmt.Sprintf("may match the same requests as %s: Dubbo applies both (each filters what the other left), Istio only the first matching route", routes[i].Clause)})
				break
			}
		}
		methods = append(methods, ms)
		routes = append(routes, cr)
	}
	c := r.Condition
	for i, s := range c.Conditions {
		m, f := splitCondition(s)
		add(fmt.Sprintf("conditions[%d]", i), m, []condDestSpec{{f, 0}}, false)
	}
	md := slices.Clone(c.MultiDestination)
	slices.SortStableFunc(md, func(a, b registry.MultiDestCondition) int { return b.Priority - a.Priority })
	for i, d := range md {
		clause := fmt.Sprintf("conditions[%d]", len(c.Conditions)+i)
		if d.Ratio > 0 {
			probs = append(probs, GovProblem{clause, fmt.Sprintf("ratio %d: Dubbo's minimum share of instances has no Istio equivalent", d.Ratio)})
		}
		var dests []condDestSpec
		for _, t := range d.To {
			dests = append(dests, condDestSpec{t.Match, int32(t.Weight)})
		}
		add(clause, d.From, dests, d.TrafficDisable)
	}
	return routes, probs
}

type condDestSpec struct {
	filter string
	weight int32
}
