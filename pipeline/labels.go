package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/translate"
)

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
