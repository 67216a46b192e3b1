package pipeline

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/rules"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// staticLabelKeys are the label keys the operator's static resources select endpoints by:
// DestinationRule subsets and ServiceEntry workload selectors. translate keeps them on endpoints
// like the rules' keys, so a static subset never selects a label the label mode dropped.
// Resources were validated when loaded; one that does not decode selects nothing here.
func staticLabelKeys(static []*istio.Resource) []string {
	set := map[string]bool{}
	for _, r := range static {
		switch r.Collection {
		case istio.CollectionDestinationRule, istio.CollectionServiceEntry:
		default:
			continue
		}
		spec, err := r.DecodeSpec()
		if err != nil {
			continue
		}
		switch s := spec.(type) {
		case *networking.DestinationRule:
			for _, sub := range s.GetSubsets() {
				for k := range sub.GetLabels() {
					set[k] = true
				}
			}
		case *networking.ServiceEntry:
			for k := range s.GetWorkloadSelector().GetLabels() {
				set[k] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// routedKeys returns the keys to keep for each push: the rules' (which change with the rules)
// and the static ones (fixed for a producer list). The union is recomputed only when the rules'
// list changed (LabelKeys returns the same slice until then).
func routedKeys(rp *rules.Producer, static []string) func() []string {
	var last, out []string
	return func() []string {
		keys := rp.LabelKeys()
		if out != nil && len(keys) == len(last) && (len(keys) == 0 || &keys[0] == &last[0]) {
			return out
		}
		last = keys
		out = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(keys), static...))))
		return out
	}
}

// labelsCollector exports what translate.labels dropped, from the running translator (a reload
// replaces it). The key label is bounded: translate reports at most
// translate.MaxDroppedKeysShown keys and sums the rest under translate.OtherKeys.
type labelsCollector struct{ p *Pipeline }

var (
	labelsDroppedDesc = prometheus.NewDesc("mcp_bridge_translate_labels_dropped",
		"Endpoints served without a registry label because translate.labels dropped its key, by key (the largest "+
			"counts; the rest summed under key=\"_other\"). See /debug/config.", []string{"key"}, nil)
	labelsDroppedKeysDesc = prometheus.NewDesc("mcp_bridge_translate_labels_dropped_keys",
		"Distinct registry label keys translate.labels dropped from the endpoints served.", nil, nil)
	labelsRoutedDesc = prometheus.NewDesc("mcp_bridge_translate_labels_routed_keys",
		"Label keys kept on endpoints because a rule or an applied governance rule references them.", nil, nil)
)

func (labelsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- labelsDroppedDesc
	ch <- labelsDroppedKeysDesc
	ch <- labelsRoutedDesc
}

func (c labelsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.LabelStats()
	for _, kc := range s.Dropped {
		ch <- prometheus.MustNewConstMetric(labelsDroppedDesc, prometheus.GaugeValue, float64(kc.Count), kc.Key)
	}
	ch <- prometheus.MustNewConstMetric(labelsDroppedKeysDesc, prometheus.GaugeValue, float64(s.DroppedKeys))
	ch <- prometheus.MustNewConstMetric(labelsRoutedDesc, prometheus.GaugeValue, float64(len(s.Routed)))
}

// LabelStats is what the running translator's label policy did to the last push.
func (p *Pipeline) LabelStats() translate.LabelStats { return p.tr.Load().LabelStats() }
