package nacos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/config"
	"github.com/mcp-bridge/mcp-bridge/e2e/mcpclient"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/pipeline"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/nacos"
)

// bridge is the real bridge pipeline (package pipeline, as `mcp-bridge serve` runs it: adapter,
// merge, translate, MCP server) for one Nacos registry named "nacos" with the type's defaults,
// and an ADS client subscribed to ServiceEntries as Istiod's MCP client is.
type bridge struct {
	p   *pipeline.Pipeline
	a   *nacos.Adapter
	rec *testkit.RecordSink // every call the adapter made, beside the pipeline's own sink
	ads adsClient
}

// startPipeline runs the pipeline with the adapter newAdapter builds for cfg (nacos.New when nil).
func startPipeline(t testing.TB, cfg nacos.Config, newAdapter func(nacos.Config, registry.Options) (*nacos.Adapter, error)) *bridge {
	t.Helper()
	if newAdapter == nil {
		newAdapter = nacos.New
	}
	b := &bridge{rec: testkit.NewRecordSink()}
	conf := &config.Config{Registries: []config.Registry{{Name: "nacos", Type: "nacos", Config: &cfg}}}
	conf.Translate.Registries = conf.TranslateRegistries()
	p, err := pipeline.New(conf, pipeline.Options{
		NewAdapter: func(r config.Registry, opts registry.Options) (registry.Adapter, error) {
			opts.Logger = testkit.Logger(t).With("registry", r.Name)
			a, err := newAdapter(*r.Config.(*nacos.Config), opts)
			if err != nil {
				return nil, err
			}
			b.a = a
			return recorded{a, b.rec}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.p = p
	b.ads = adsClient{mcpclient.Serve(t, p)}
	return b
}

// recorded runs the adapter on the pipeline's sink and a RecordSink (which gets copies).
type recorded struct {
	a   *nacos.Adapter
	rec *testkit.RecordSink
}

func (r recorded) Run(ctx context.Context, sink registry.Sink) error {
	return r.a.Run(ctx, testkit.TeeSink{r.rec, sink})
}

func (r recorded) Describe() map[string]any { return r.a.Describe() }

// status is the adapter's status as /debug/registries shows it.
func (b *bridge) status(t testing.TB) (st struct {
	Reachable  bool   `json:"reachable"`
	Recovering bool   `json:"recovering"`
	LastError  string `json:"lastError"`
}) {
	t.Helper()
	raw, err := json.Marshal(b.p.Registries())
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Adapters map[string]struct {
			Status json.RawMessage `json:"status"`
		} `json:"adapters"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(page.Adapters["nacos"].Status, &st); err != nil {
		t.Fatalf("status of the nacos adapter in %s: %v", raw, err)
	}
	return st
}

// metric returns the value of the pipeline's gauge or counter name (for the registry "nacos").
func (b *bridge) metric(t testing.TB, name string) float64 {
	t.Helper()
	fams, err := b.p.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "registry" && l.GetValue() == "nacos" {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{registry=\"nacos\"}", name)
	return 0
}

// adsClient is the shared MCP client with the rendering of endpoints these tests compare.
type adsClient struct{ *mcpclient.Client }

// endpoints renders the endpoints of a host's ServiceEntry as "address:port/weight" sorted, or
// "absent".
func (c adsClient) endpoints(host string) string {
	se := c.Entry(host)
	if se == nil {
		return "absent"
	}
	var out []string
	for _, e := range se.Endpoints {
		var ports []string
		for name, p := range e.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", name, p))
		}
		out = append(out, fmt.Sprintf("%s[%s]w%d", e.Address, strings.Join(ports, ","), e.Weight))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

// waitEndpoints waits until a host's endpoints render as want.
func (c adsClient) waitEndpoints(t testing.TB, timeout time.Duration, host, want string) {
	t.Helper()
	testkit.WaitFor(t, timeout, "MCP client to see "+host+" = "+want, func() error {
		if got := c.endpoints(host); got != want {
			return fmt.Errorf("have %s (stream error: %v)", got, c.Err())
		}
		return nil
	})
}

// host is the name the Nacos type's default templates give an application of the public
// namespace's default group.
func host(name string) string { return name + ".default-group.public.nacos" }
