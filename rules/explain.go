package rules

import (
	"fmt"
	"io"
	"strings"
)

// Explanation is, for one service, which rules matched, what they produced and why: the view of
// `mcp-bridge explain <host>` and of /debug/rules.
type Explanation struct {
	Service   string      `json:"service"`
	Namespace string      `json:"namespace,omitempty"`
	Hosts     []string    `json:"hosts"`
	Rules     []RuleMatch `json:"rules"`
	Subsets   []subsetDef `json:"subsets,omitempty"`
	HTTP      []string    `json:"httpRoutes,omitempty"`
	TCP       []string    `json:"tcpRoutes,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
	Resources []string    `json:"resources,omitempty"`
	Invalid   []string    `json:"invalid,omitempty"`
	// Governance are the registries' governance rules selecting the service, applied or not
	// (set by explain from Producer.GovernanceStatus).
	Governance []GovRule `json:"governance,omitempty"`
}

// RuleMatch is one rule selecting the service: the sections it applies and those it lost.
type RuleMatch struct {
	Name        string   `json:"name"`
	Origin      string   `json:"origin"`
	Priority    int      `json:"priority"`
	Specificity int      `json:"specificity"`
	Applied     []string `json:"applied,omitempty"`
	Lost        []string `json:"lost,omitempty"`
}

func (en *entry) explain(src string) Explanation {
	x := Explanation{Service: src, Hosts: en.hosts}
	for _, c := range en.rules {
		m := RuleMatch{Name: c.Name, Origin: c.Origin, Priority: c.Priority, Specificity: c.specificity}
		for _, sec := range sections {
			if en.win[sec] == c {
				m.Applied = append(m.Applied, sec)
			}
		}
		for _, l := range en.lost {
			if l.Loser == c.Name {
				m.Lost = append(m.Lost, fmt.Sprintf("%s to rule %s (%s)", l.Section, l.Winner, l.Why))
			}
		}
		x.Rules = append(x.Rules, m)
	}
	if en.sh != nil {
		x.Namespace = en.sh.Namespace
	}
	if p := en.policy; p != nil {
		x.Subsets, x.HTTP, x.TCP, x.Notes = p.subsets, p.http, p.tcp, p.notes
		if p.dr != nil {
			x.Resources = append(x.Resources, fmt.Sprintf("DestinationRule %s/%s version %s", p.dr.Namespace, p.dr.Name, p.dr.Version))
		}
		if p.vs != nil {
			x.Resources = append(x.Resources, fmt.Sprintf("VirtualService %s/%s version %s", p.vs.Namespace, p.vs.Name, p.vs.Version))
		}
		for _, i := range p.invalid {
			x.Invalid = append(x.Invalid, i.Reason+": "+i.Detail)
		}
	}
	return x
}

// WriteText prints an explanation for people (`mcp-bridge explain`).
func (x Explanation) WriteText(w io.Writer) {
	fmt.Fprintf(w, "service %s\n  hosts: %s\n", x.Service, strings.Join(x.Hosts, ", "))
	if len(x.Governance) > 0 {
		fmt.Fprintln(w, "  registry governance rules:")
		for _, g := range x.Governance {
			fmt.Fprintf(w, "    %s %s (%s): %s", g.Registry, g.Key, g.Summary, g.State)
			if g.Rule != "" {
				fmt.Fprintf(w, " as rule %s", g.Rule)
			}
			fmt.Fprintln(w)
			for _, p := range g.Problems {
				fmt.Fprintf(w, "      not translatable: %s: %s\n", p.Clause, p.Reason)
			}
		}
	}
	if len(x.Rules) == 0 {
		fmt.Fprintln(w, "  no rule selects it")
		return
	}
	fmt.Fprintln(w, "  rules (in precedence order: priority, then specificity, then name):")
	for _, r := range x.Rules {
		fmt.Fprintf(w, "    %s (%s; priority %d, specificity %d)\n", r.Name, r.Origin, r.Priority, r.Specificity)
		if len(r.Applied) > 0 {
			fmt.Fprintf(w, "      applies: %s\n", strings.Join(r.Applied, ", "))
		}
		for _, l := range r.Lost {
			fmt.Fprintf(w, "      lost %s\n", l)
		}
	}
	if len(x.Subsets) > 0 {
		fmt.Fprintln(w, "  subsets:")
		for _, s := range x.Subsets {
			stale := ""
			if s.Stale {
				stale = ", stale: kept for when instances return"
			}
			fmt.Fprintf(w, "    %s %v: %d live instances (%s%s)\n", s.Name, s.Labels, s.Live, s.From, stale)
		}
	}
	for _, sec := range []struct {
		title string
		lines []string
	}{{"HTTP/gRPC routes, first match wins", x.HTTP}, {"TCP routes", x.TCP}, {"notes", x.Notes}, {"resources", x.Resources}, {"invalid, not emitted", x.Invalid}} {
		if len(sec.lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", sec.title)
		for _, l := range sec.lines {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}
