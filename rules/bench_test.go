package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// BenchmarkRulesChange10k: 10,000 services, 1,000 rules (each selecting ten services by exact
// host, plus a lanes and a resilience rule over all); each iteration one instance of one service
// changes (a canary instance flips health) and the engine re-evaluates: Prepare + Evaluate, the
// engine's whole cost per registry change. translate runs outside the timer.
func BenchmarkRulesChange10k(b *testing.B) {
	nSvc, nRules := 10000, 1000
	if testing.Short() {
		nSvc, nRules = 100, 10
	}
	var rb strings.Builder
	for r := range nRules - 2 {
		var hosts []string
		for k := range 10 {
			hosts = append(hosts, fmt.Sprintf("svc-%d.reg", r*10+k))
		}
		fmt.Fprintf(&rb, "%smetadata: {name: r%d}\nspec:\n  selector: {hosts: [%s]}\n  canary: {stable: {version: v1}, canary: {version: v2}, weight: 10, match: [{modulo: \"user-id %% 100 < 20\"}]}\n---\n",
			ruleHeader, r, strings.Join(hosts, ", "))
	}
	rb.WriteString(rule("all-lanes", "  lanes: {}"))
	rb.WriteString(rule("all-timeouts", "  resilience: {timeout: 2s}"))
	w := newWorld(b, rb.String())
	ss := make([]*registry.Service, nSvc)
	for i := range ss {
		s := &registry.Service{Registry: "reg", Kind: registry.KindApplication, Name: fmt.Sprintf("svc-%d", i),
			Ports: []registry.Port{{Name: "grpc", Protocol: registry.ProtocolGRPC}}}
		for j := range 4 {
			v := "v1"
			if j == 3 {
				v = "v2"
			}
			s.Instances = append(s.Instances, registry.Instance{ID: fmt.Sprint(j), Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1),
				Ports: map[string]uint32{"grpc": 9000}, Labels: map[string]string{"version": v}, Weight: 100, Healthy: true, Enabled: true})
		}
		ss[i] = s
	}
	res := w.step(ss)
	if n := len(res.Resources["networking.istio.io/VirtualService"]); n != nSvc {
		b.Fatalf("%d VirtualServices, want %d", n, nSvc)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		k := (i * 7919) % ((nRules - 2) * 10) // a service some canary rule selects
		c := ss[k].Clone()
		c.Instances[3].Healthy = !c.Instances[3].Healthy
		ss[k] = c
		b.StartTimer()
		prepared := w.e.Prepare(ss)
		b.StopTimer()
		out := w.tr.Translate(prepared)
		b.StartTimer()
		if r := w.e.Evaluate(ss, out); !r.Changed {
			x := w.e.Explain(fmt.Sprintf("svc-%d.reg", k))
			b.Fatalf("the change of svc-%d changed nothing: %+v", k, x)
		}
	}
}
