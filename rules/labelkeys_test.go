package rules

import (
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// TestLabelKeys: every label key a section selects endpoints by is listed, declared and
// governance rules alike, and the list follows SetRules.
func TestLabelKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules string
		gov   bool
		want  []string
	}{
		{"none", "", false, nil},
		{"subsets", rule("s", "  subsets: {labels: [cell, version]}"), false, []string{"cell", "version"}},
		{"canary", rule("c", "  canary: {stable: {track: stable}, canary: {track: canary, build: b2}, weight: 5}"), false, []string{"build", "track"}},
		{"tag routing default and its alias", rule("t", "  tagRouting: {}"), false, []string{"dubbo-tag", "dubbo.tag"}},
		{"tag routing label", rule("t", "  tagRouting: {label: flavour}"), false, []string{"flavour"}},
		{"lanes", rule("l", "  lanes: {label: swimlane}"), false, []string{"swimlane"}},
		{"locality failover priority", rule("loc", "  locality: {failoverPriority: [rack, \"topology.istio.io/network=n1\"]}"), false,
			[]string{"rack", "topology.istio.io/network"}},
		{"selector labels", rule("sel", "  selector: {labels: {team: pay}}\n  subsets: {labels: [cell]}"), false, []string{"cell", "team"}},
		// Dubbo's documented governance examples: the tag rules' tag label, the condition rule's
		// region, the mesh rule's subsets (env-sign, tag1).
		{"governance", "", true, []string{"dubbo-tag", "env-sign", "region", "tag1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.rules)
			if tc.gov {
				p := NewProducer(w.e)
				p.SetGovernanceMode(GovernanceApply)
				p.setGovernance(parseDubboRules(t, dubboDocRules), false)
			}
			got := w.e.LabelKeys()
			for _, k := range tc.want {
				if !slices.Contains(got, k) {
					t.Errorf("LabelKeys() = %v lacks %q", got, k)
				}
			}
			if !tc.gov && len(got) != len(tc.want) {
				t.Errorf("LabelKeys() = %v, want %v", got, tc.want)
			}
		})
	}
	w := newWorld(t, rule("s", "  subsets: {labels: [cell]}"))
	if got := w.e.LabelKeys(); !slices.Equal(got, []string{"cell"}) {
		t.Fatalf("LabelKeys() = %v", got)
	}
	rs, err := ParseFile("r.yaml", []byte(rule("s", "  subsets: {labels: [rack]}")))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.e.SetRules(rs); err != nil {
		t.Fatal(err)
	}
	if got := w.e.LabelKeys(); !slices.Equal(got, []string{"rack"}) {
		t.Errorf("after SetRules: LabelKeys() = %v, want [rack]", got)
	}
}

// TestSubsetLabelsReachEndpoints: a subset on a label key outside translate's routing allowlist
// ("cell") selects endpoints that carry it: the endpoints of the ServiceEntry have every label
// key each generated subset selects by. translate's default label mode would drop "cell" if the
// rules did not name it.
func TestSubsetLabelsReachEndpoints(t *testing.T) {
	w := newWorld(t, rule("cells", "  subsets: {labels: [cell]}"))
	ss := services(t, "services:\n"+svc("a", "application", grpcPort,
		inst("10.0.0.1", "grpc: 9000", "cell: c1, anyhost: \"true\""), inst("10.0.0.2", "grpc: 9000", "cell: c2"), inst("10.0.0.3", "grpc: 9000", "")))
	w.tr.SetRoutedLabels(w.e.LabelKeys())
	out := w.tr.Translate(w.e.Prepare(ss))
	res := w.e.Evaluate(ss, out)
	drs := res.Resources[istio.CollectionDestinationRule]
	if len(drs) != 1 {
		t.Fatalf("%d DestinationRules", len(drs))
	}
	spec, err := drs[0].DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	ses := out.Resources[istio.CollectionServiceEntry]
	seSpec, err := ses[0].DecodeSpec()
	if err != nil {
		t.Fatal(err)
	}
	eps := seSpec.(*networking.ServiceEntry).GetEndpoints()
	for _, sub := range spec.(*networking.DestinationRule).GetSubsets() {
		matched := 0
		for _, ep := range eps {
			ok := true
			for k, v := range sub.GetLabels() {
				if got, has := ep.GetLabels()[k]; !has || got != v {
					ok = false
				}
			}
			if ok {
				matched++
			}
		}
		if matched != 1 {
			t.Errorf("subset %s (%v) matches %d endpoints, want 1", sub.GetName(), sub.GetLabels(), matched)
		}
	}
	for _, ep := range eps {
		if _, ok := ep.GetLabels()["anyhost"]; ok {
			t.Errorf("endpoint %s carries anyhost, which neither the rules nor the allowlist keep", ep.GetAddress())
		}
	}
}
