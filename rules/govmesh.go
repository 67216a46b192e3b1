package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// Dubbo mesh rules (<app>.MESHAPPRULE): Dubbo's own dialect of Istio's VirtualService and
// DestinationRule (apiVersion service.dubbo.apache.org/v1alpha1). The DestinationRule's subsets
// become named subsets; each VirtualService routedetail becomes a route: method name matches ->
// the gRPC/Triple path, attachments (dubbocontext) -> headers, sourceLabels -> sourceLabels;
// destinations must be subsets of the rule's own application (a destination on another host is
// a problem: the engine writes policy per service). Threshold, fallback and argument matches are
// problems.

type meshDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Host    string `yaml:"host"`
		Subsets []struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"subsets"`
		TrafficPolicy *struct {
			LoadBalancer *struct {
				Simple string `yaml:"simple"`
			} `yaml:"loadBalancer"`
		} `yaml:"trafficPolicy"`
		Hosts []string `yaml:"hosts"`
		Dubbo []struct {
			Services    []yaml.Node `yaml:"services"`
			RouteDetail []struct {
				Name  string      `yaml:"name"`
				Match []meshMatch `yaml:"match"`
				Route []meshRoute `yaml:"route"`
			} `yaml:"routedetail"`
		} `yaml:"dubbo"`
	} `yaml:"spec"`
}

type meshMatch struct {
	Name   string `yaml:"name"`
	Method *struct {
		NameMatch *meshString `yaml:"name_match"`
		Argc      *int        `yaml:"argc"`
		Args      yaml.Node   `yaml:"args"`
		Argp      yaml.Node   `yaml:"argp"`
		Headers   yaml.Node   `yaml:"headers"`
	} `yaml:"method"`
	SourceLabels map[string]string `yaml:"sourceLabels"`
	Attachments  *struct {
		EagleEyeContext map[string]meshString `yaml:"eagleeyecontext"`
		DubboContext    map[string]meshString `yaml:"dubbocontext"`
	} `yaml:"attachments"`
	Headers   yaml.Node `yaml:"headers"`
	Threshold yaml.Node `yaml:"threshold"`
}

type meshString struct {
	Exact   string `yaml:"exact"`
	Prefix  string `yaml:"prefix"`
	Regex   string `yaml:"regex"`
	NoEmpty string `yaml:"noempty"`
	Empty   string `yaml:"empty"`
}

type meshRoute struct {
	Destination *meshDest `yaml:"destination"`
	Weight      int32     `yaml:"weight"`
}

type meshDest struct {
	Host     string    `yaml:"host"`
	Subset   string    `yaml:"subset"`
	Weight   int32     `yaml:"weight"`
	Fallback yaml.Node `yaml:"fallback"`
}

func meshSpec(r *registry.Rule, spec *Spec) (*Spec, []GovProblem, []string) {
	var probs []GovProblem
	prob := func(clause, f string, a ...any) { probs = append(probs, GovProblem{clause, fmt.Sprintf(f, a...)}) }
	dec := yaml.NewDecoder(bytes.NewReader([]byte(r.Raw)))
	var docs []meshDoc
	for {
		var d meshDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, []GovProblem{{fmt.Sprintf("document %d", len(docs)+1), err.Error()}}, nil
		}
		docs = append(docs, d)
	}
	conds := &Conditions{}
	for i, d := range docs {
		if d.Kind != "DestinationRule" {
			continue
		}
		at := fmt.Sprintf("document %d (DestinationRule %s)", i+1, d.Metadata.Name)
		if tp := d.Spec.TrafficPolicy; tp != nil {
			switch lb := tp.LoadBalancer; {
			case lb == nil || !slices.Contains([]string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"}, lb.Simple):
				prob(at+" trafficPolicy", "only loadBalancer.simple ROUND_ROBIN, LEAST_REQUEST or RANDOM is translated")
			default:
				spec.Resilience = &Resilience{LoadBalancer: &LoadBalancer{Simple: lb.Simple}}
			}
		}
		for _, s := range d.Spec.Subsets {
			labels := map[string]string{}
			for k, v := range s.Labels {
				labels[labelKeyOf(k)] = translate.SanitizeLabelValue(v)
			}
			if err := condDestLabelsValid(labels); err != nil || s.Name == "" {
				prob(at+" subset "+s.Name, "needs a name and valid labels")
				continue
			}
			conds.Subsets = append(conds.Subsets, NamedSubset{Name: "mesh-" + slug(s.Name, 45), Labels: labels})
		}
	}
	known := func(name string) bool {
		return slices.ContainsFunc(conds.Subsets, func(s NamedSubset) bool { return s.Name == "mesh-"+slug(name, 45) })
	}
	for i, d := range docs {
		switch d.Kind {
		case "DestinationRule":
			continue
		case "VirtualService":
		default:
			prob(fmt.Sprintf("document %d", i+1), "kind %q is not VirtualService or DestinationRule", d.Kind)
			continue
		}
		for j, dub := range d.Spec.Dubbo {
			for k, rd := range dub.RouteDetail {
				at := fmt.Sprintf("document %d (VirtualService %s) dubbo[%d].routedetail[%d]", i+1, d.Metadata.Name, j, k)
				cr := CondRoute{Clause: at, Desc: "mesh route " + rd.Name}
				for _, m := range rd.Match {
					hm, ok := meshMatchOf(m, at, prob)
					if ok {
						cr.Match = append(cr.Match, hm)
					}
				}
				for _, rt := range rd.Route {
					if rt.Destination == nil {
						prob(at, "a route without destination")
						continue
					}
					dst := rt.Destination
					if dst.Fallback.Kind != 0 {
						prob(at, "fallback destinations are not translated (Istio has no per-route fallback)")
					}
					if dst.Host != "" && dst.Host != r.Application && !strings.HasPrefix(dst.Host, r.Application+".") {
						prob(at, "destination host %q is not the rule's application %q: the engine writes policy per service", dst.Host, r.Application)
					}
					if dst.Subset != "" && !known(dst.Subset) {
						prob(at, "subset %q is not declared by the rule's DestinationRule", dst.Subset)
						continue
					}
					w := cmpOrInt(rt.Weight, dst.Weight)
					d := CondDest{Weight: w}
					if dst.Subset != "" {
						d.Subset = "mesh-" + slug(dst.Subset, 45)
					}
					cr.Dests = append(cr.Dests, d)
				}
				if len(cr.Dests) == 0 {
					prob(at, "no usable destination")
				}
				conds.Routes = append(conds.Routes, cr)
			}
		}
	}
	if len(conds.Routes) == 0 && len(conds.Subsets) == 0 && len(probs) == 0 {
		return nil, nil, nil
	}
	spec.Conditions = conds
	return spec, probs, nil
}

func meshMatchOf(m meshMatch, at string, prob func(string, string, ...any)) (HTTPMatch, bool) {
	hm := HTTPMatch{}
	ok := true
	if m.Threshold.Kind != 0 || m.Headers.Kind != 0 {
		prob(at, "match threshold/headers are not translated")
		ok = false
	}
	if me := m.Method; me != nil {
		if me.Argc != nil || me.Args.Kind != 0 || me.Argp.Kind != 0 || me.Headers.Kind != 0 {
			prob(at, "method argument matches: argument values are in the request body; Istio routes on paths and headers only")
			ok = false
		}
		if nm := me.NameMatch; nm != nil {
			switch {
			case nm.Exact != "":
				hm.URIRegex = "/[^/]+/" + alternation([]string{nm.Exact})
			case nm.Prefix != "":
				hm.URIRegex = "/[^/]+/" + alternation([]string{nm.Prefix + "*"})
			case nm.Regex != "":
				hm.URIRegex = "/[^/]+/(?:" + nm.Regex + ")"
			default:
				prob(at, "method name_match needs exact, prefix or regex")
				ok = false
			}
		}
	}
	if len(m.SourceLabels) > 0 {
		hm.SourceLabels = m.SourceLabels
	}
	if a := m.Attachments; a != nil {
		if len(a.EagleEyeContext) > 0 {
			prob(at, "eagleeyecontext attachments are not translated")
			ok = false
		}
		for k, v := range a.DubboContext {
			h := strings.ToLower(k)
			var sm StringMatch
			switch {
			case v.Exact != "":
				sm.Exact = v.Exact
			case v.Prefix != "":
				sm.Prefix = v.Prefix
			case v.Regex != "":
				sm.Regex = v.Regex
			default:
				prob(at, "attachment %s: only exact, prefix and regex are translated", k)
				ok = false
				continue
			}
			if !validHeader(h) {
				prob(at, "attachment %s is not a valid header name", k)
				ok = false
				continue
			}
			if hm.Headers == nil {
				hm.Headers = map[string]StringMatch{}
			}
			hm.Headers[h] = sm
		}
	}
	return hm, ok
}

func cmpOrInt(a, b int32) int32 {
	if a != 0 {
		return a
	}
	return b
}
