package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// harnessRun is one TestScaleHarness run: what harness-<instances>.json holds.
type harnessRun struct {
	Date      string           `json:"date"`
	Machine   string           `json:"machine"`
	Services  int              `json:"services"`
	Instances int              `json:"instances"`
	Groups    int              `json:"groups"`
	Changes   int              `json:"changesPerRate"`
	Rates     []float64        `json:"rates"`
	Results   []*harnessResult `json:"results"`
}

// harnessResult is one mode's figures.
type harnessResult struct {
	Name             string             `json:"name"`
	Mode             string             `json:"endpointMode"` // inline or workloadEntry
	CRD              bool               `json:"crd"`          // the Kubernetes-CRD path, not MCP
	Shards           int                `json:"shards"`
	ServiceEntries   float64            `json:"serviceEntries"`
	WorkloadEntries  float64            `json:"workloadEntries"`
	BridgeReadyMs    float64            `json:"bridgeReadyMs"`
	CRSetupMs        float64            `json:"crSetupMs,omitempty"` // writing every custom resource (CRD path)
	IstiodReadyMs    float64            `json:"istiodReadyMs"`
	ColdStartMs      float64            `json:"coldStartMs"` // Istiod start -> the sidecar has every endpoint
	IdleCPUms        map[string]float64 `json:"idleCpuMsPerSecond"`
	Rates            []harnessRate      `json:"rates"`
	BridgePeakRSSMiB float64            `json:"bridgePeakRssMiB"`
	BridgeRSSMiB     float64            `json:"bridgeRssMiB"`  // at the end of the run
	BridgeHeapMiB    float64            `json:"bridgeHeapMiB"` // Go heap in use at the end of the run
	IstiodPeakRSSMiB float64            `json:"istiodPeakRssMiB"`
	IstiodRSSMiB     [][2]float64       `json:"istiodRssMiB"` // [seconds since Istiod start, MiB]
	CRWrites         int                `json:"crWrites,omitempty"`
	CRBytes          int64              `json:"crBytes,omitempty"`
}

// harnessRate is one run of changes at one rate.
type harnessRate struct {
	Rate                float64            `json:"changesPerSecond"`
	LatencyMs           []float64          `json:"latencyMs"`                // ZooKeeper write -> sidecar EDS, per change
	FromAPIWriteMs      []float64          `json:"fromApiWriteMs,omitempty"` // CRD path: API write -> sidecar EDS
	CPUPerChangeMs      map[string]float64 `json:"cpuPerChangeMs"`           // per process, idle subtracted
	SentBytesPerChange  float64            `json:"sentBytesPerChange"`       // bridge -> every MCP client
	MarshalledPerChange float64            `json:"marshalledPerChange"`
	ResponsesPerChange  float64            `json:"responsesPerChange"`
	CRWritesPerChange   float64            `json:"crWritesPerChange,omitempty"`
	CRBytesPerChange    float64            `json:"crBytesPerChange,omitempty"`
}

func (r harnessRate) pct(p float64, fromAPI bool) float64 {
	v := r.LatencyMs
	if fromAPI {
		v = r.FromAPIWriteMs
	}
	ds := make([]time.Duration, len(v))
	for i, ms := range v {
		ds[i] = time.Duration(ms * float64(time.Millisecond))
	}
	slices.Sort(ds)
	return msOf(percentile(ds, p))
}

func harnessMachine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s/%s, %s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func writeHarnessRun(path string, run *harnessRun) error {
	b, err := json.MarshalIndent(run, "", " ")
	if err != nil {
		return fmt.Errorf("encoding harness results: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing harness results: %w", err)
	}
	return nil
}

func readHarnessRun(path string) (*harnessRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading harness results: %w", err)
	}
	var run harnessRun
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &run, nil
}

// crdOf is the CRD-path result with r's endpoint mode, nil if the run has none.
// mergedWith is run's results with next's added, a result of next replacing run's of the same
// name; the date, machine and size are next's.
func (run *harnessRun) mergedWith(next *harnessRun) *harnessRun {
	merged := *next
	merged.Results = nil
	replaced := map[string]bool{}
	for _, r := range next.Results {
		replaced[r.Name] = true
	}
	for _, r := range run.Results {
		if !replaced[r.Name] {
			merged.Results = append(merged.Results, r)
		}
	}
	merged.Results = append(merged.Results, next.Results...)
	return &merged
}

func (run *harnessRun) crdOf(r *harnessResult) *harnessResult {
	for _, c := range run.Results {
		if c.CRD && c.Mode == r.Mode {
			return c
		}
	}
	return nil
}

// harnessTable renders every mode's figures side by side; each MCP column is followed by its
// ratio to the CRD path with the same endpoint mode (MCP/CRD).
func harnessTable(run *harnessRun) string {
	type row struct {
		name string
		val  func(*harnessResult) float64
	}
	rows := []row{
		{"ServiceEntries", func(r *harnessResult) float64 { return r.ServiceEntries }},
		{"WorkloadEntries", func(r *harnessResult) float64 { return r.WorkloadEntries }},
		{"bridge ready (ms)", func(r *harnessResult) float64 { return r.BridgeReadyMs }},
		{"custom resources written (ms)", func(r *harnessResult) float64 { return r.CRSetupMs }},
		{"istiod ready (ms)", func(r *harnessResult) float64 { return r.IstiodReadyMs }},
		{"istiod start -> every endpoint (ms)", func(r *harnessResult) float64 { return r.ColdStartMs }},
	}
	for i, rate := range run.Rates {
		at := func(f func(harnessRate) float64) func(*harnessResult) float64 {
			return func(r *harnessResult) float64 {
				if i >= len(r.Rates) {
					return 0
				}
				return f(r.Rates[i])
			}
		}
		pre := fmt.Sprintf("@%g/s ", rate)
		rows = append(rows,
			row{pre + "change->EDS p50 (ms)", at(func(x harnessRate) float64 { return x.pct(50, false) })},
			row{pre + "change->EDS p95 (ms)", at(func(x harnessRate) float64 { return x.pct(95, false) })},
			row{pre + "change->EDS p99 (ms)", at(func(x harnessRate) float64 { return x.pct(99, false) })},
			row{pre + "API write->EDS p50 (ms)", at(func(x harnessRate) float64 { return x.pct(50, true) })},
			row{pre + "istiod CPU/change (ms)", at(func(x harnessRate) float64 { return x.CPUPerChangeMs["istiod"] })},
			row{pre + "bridge CPU/change (ms)", at(func(x harnessRate) float64 { return x.CPUPerChangeMs["bridge"] })},
			row{pre + "apiserver+etcd CPU/change (ms)", at(func(x harnessRate) float64 { return x.CPUPerChangeMs["apiserver"] + x.CPUPerChangeMs["etcd"] })},
			row{pre + "MCP bytes sent/change", at(func(x harnessRate) float64 { return x.SentBytesPerChange })},
			row{pre + "resources marshalled/change", at(func(x harnessRate) float64 { return x.MarshalledPerChange })},
			row{pre + "CR bytes written/change", at(func(x harnessRate) float64 { return x.CRBytesPerChange })},
		)
	}
	rows = append(rows,
		row{"bridge peak RSS (MiB)", func(r *harnessResult) float64 { return r.BridgePeakRSSMiB }},
		row{"bridge RSS at the end (MiB)", func(r *harnessResult) float64 { return r.BridgeRSSMiB }},
		row{"bridge Go heap in use at the end (MiB)", func(r *harnessResult) float64 { return r.BridgeHeapMiB }},
		row{"istiod peak RSS (MiB)", func(r *harnessResult) float64 { return r.IstiodPeakRSSMiB }},
		row{"istiod RSS at the end (MiB)", func(r *harnessResult) float64 {
			if len(r.IstiodRSSMiB) == 0 {
				return 0
			}
			return r.IstiodRSSMiB[len(r.IstiodRSSMiB)-1][1]
		}},
	)
	var b strings.Builder
	fmt.Fprintf(&b, "harness %d services, %d instances, %d changes per rate; MCP/CRD = ratio to the CRD path with the same endpoint mode\n",
		run.Services, run.Instances, run.Changes)
	fmt.Fprintf(&b, "%-40s", "")
	for _, r := range run.Results {
		fmt.Fprintf(&b, " %22s", r.Name)
		if !r.CRD && run.crdOf(r) != nil {
			fmt.Fprintf(&b, " %8s", "MCP/CRD")
		}
	}
	b.WriteString("\n")
	for _, rw := range rows {
		fmt.Fprintf(&b, "%-40s", rw.name)
		for _, r := range run.Results {
			fmt.Fprintf(&b, " %22s", scaleFigure(rw.val(r)))
			if c := run.crdOf(r); !r.CRD && c != nil {
				// A figure only one path has (custom resources, the API server's CPU) has no ratio.
				if cv, mv := rw.val(c), rw.val(r); cv != 0 && mv != 0 {
					fmt.Fprintf(&b, " %8.2f", rw.val(r)/cv)
				} else {
					fmt.Fprintf(&b, " %8s", "-")
				}
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// plotHarnessDir reads every harness-*.json in dir and writes the plots there: per run, the
// latency distributions per mode; over runs, Istiod CPU per change vs size, MCP vs CRD, and
// shards vs cost. It returns the files written.
func plotHarnessDir(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "harness-*.json"))
	if err != nil {
		return nil, err
	}
	var runs []*harnessRun
	for _, p := range paths {
		run, err := readHarnessRun(p)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no harness-*.json in %s", dir)
	}
	slices.SortFunc(runs, func(a, b *harnessRun) int { return cmp.Compare(a.Instances, b.Instances) })
	var out []string
	save := func(name string, p *plot.Plot) error {
		path := filepath.Join(dir, name)
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		out = append(out, path)
		return nil
	}
	for _, run := range runs {
		p, err := latencyPlot(run)
		if err != nil {
			return nil, err
		}
		if err := save(fmt.Sprintf("harness-latency-%d.png", run.Instances), p); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		make func([]*harnessRun) (*plot.Plot, error)
	}{
		{"harness-istiod-cpu-vs-size.png", cpuVsSizePlot},
		{"harness-mcp-vs-crd.png", mcpVsCRDPlot},
		{"harness-shards.png", shardsPlot},
	} {
		p, err := f.make(runs)
		if err != nil {
			return nil, err
		}
		if err := save(f.name, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// series is one named line.
type series struct {
	name string
	xys  plotter.XYs
}

func linePlot(title, x, y string, logX bool, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	var args []any
	for _, s := range ss {
		if len(s.xys) > 0 {
			args = append(args, s.name, s.xys)
		}
	}
	if len(args) == 0 {
		// An empty plot still says what it would show, rather than failing the run.
		p.Title.Text += " (no data)"
		return p, nil
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, fmt.Errorf("plotting %s: %w", title, err)
	}
	if logX {
		// Sizes span decades (1k, 10k, 100k); a log axis needs every x > 0, which sizes are.
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	return p, nil
}

// latencyPlot is the distribution (CDF) of change -> sidecar EDS latency per mode and rate.
func latencyPlot(run *harnessRun) (*plot.Plot, error) {
	var ss []series
	for _, r := range run.Results {
		for _, rate := range r.Rates {
			v := slices.Sorted(slices.Values(rate.LatencyMs))
			xys := make(plotter.XYs, len(v))
			for i, ms := range v {
				xys[i].X, xys[i].Y = ms, float64(i+1)/float64(len(v))
			}
			ss = append(ss, series{fmt.Sprintf("%s @%g/s", r.Name, rate.Rate), xys})
		}
	}
	p, err := linePlot(fmt.Sprintf("change -> sidecar EDS, %d instances (CDF)", run.Instances), "latency (ms)", "fraction of changes", false, ss)
	if err == nil {
		p.Legend.Top = false // bottom right: the curves rise to the top right
	}
	return p, err
}

// byName collects, over runs, one point per run for every result name.
func byName(runs []*harnessRun, keep func(*harnessResult) bool, x func(*harnessRun, *harnessResult) float64, y func(*harnessRun, *harnessResult) (float64, bool)) []series {
	idx := map[string]int{}
	var ss []series
	for _, run := range runs {
		for _, r := range run.Results {
			v, ok := y(run, r)
			if !keep(r) || !ok {
				continue
			}
			i, seen := idx[r.Name]
			if !seen {
				i = len(ss)
				idx[r.Name] = i
				ss = append(ss, series{name: r.Name})
			}
			ss[i].xys = append(ss[i].xys, plotter.XY{X: x(run, r), Y: v})
		}
	}
	for i := range ss {
		slices.SortFunc(ss[i].xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
	}
	return ss
}

// firstRate is the lowest-rate run of changes (1/s by default), where changes do not overlap.
func firstRate(r *harnessResult) (harnessRate, bool) {
	if len(r.Rates) == 0 {
		return harnessRate{}, false
	}
	return slices.MinFunc(r.Rates, func(a, b harnessRate) int { return cmp.Compare(a.Rate, b.Rate) }), true
}

func cpuVsSizePlot(runs []*harnessRun) (*plot.Plot, error) {
	ss := byName(runs, func(r *harnessResult) bool { return r.Shards <= 1 },
		func(run *harnessRun, _ *harnessResult) float64 { return float64(run.Instances) },
		func(_ *harnessRun, r *harnessResult) (float64, bool) {
			rate, ok := firstRate(r)
			return rate.CPUPerChangeMs["istiod"], ok
		})
	return linePlot("Istiod CPU per change vs size (lowest rate)", "instances", "Istiod CPU per change (ms)", true, ss)
}

// mcpVsCRDPlot is, per endpoint mode, the MCP path's figures divided by the CRD path's: below 1
// the MCP path is cheaper.
func mcpVsCRDPlot(runs []*harnessRun) (*plot.Plot, error) {
	var ss []series
	for _, metric := range []struct {
		name string
		f    func(harnessRate) float64
	}{
		{"Istiod CPU/change", func(r harnessRate) float64 { return r.CPUPerChangeMs["istiod"] }},
		{"EDS p50", func(r harnessRate) float64 { return r.pct(50, false) }},
		{"EDS p99", func(r harnessRate) float64 { return r.pct(99, false) }},
	} {
		for _, s := range byName(runs, func(r *harnessResult) bool { return !r.CRD && r.Shards <= 1 },
			func(run *harnessRun, _ *harnessResult) float64 { return float64(run.Instances) },
			func(run *harnessRun, r *harnessResult) (float64, bool) {
				c := run.crdOf(r)
				if c == nil {
					return 0, false
				}
				m, ok1 := firstRate(r)
				k, ok2 := firstRate(c)
				if !ok1 || !ok2 || metric.f(k) <= 0 {
					return 0, false
				}
				return metric.f(m) / metric.f(k), true
			}) {
			s.name = s.name + " " + metric.name
			ss = append(ss, s)
		}
	}
	return linePlot("MCP / CRD path (lowest rate; < 1: MCP cheaper)", "instances", "MCP / CRD", true, ss)
}

// shardsPlot is Istiod CPU per change and cold start against the shard count, per endpoint mode
// and size.
func shardsPlot(runs []*harnessRun) (*plot.Plot, error) {
	var ss []series
	for _, run := range runs {
		for _, mode := range []string{hModeInline, hModeWE} {
			cpu := series{name: fmt.Sprintf("%s %d: Istiod CPU/change (ms)", mode, run.Instances)}
			cold := series{name: fmt.Sprintf("%s %d: cold start (s)", mode, run.Instances)}
			for _, r := range run.Results {
				if r.CRD || r.Mode != mode {
					continue
				}
				if rate, ok := firstRate(r); ok {
					cpu.xys = append(cpu.xys, plotter.XY{X: float64(r.Shards), Y: rate.CPUPerChangeMs["istiod"]})
				}
				cold.xys = append(cold.xys, plotter.XY{X: float64(r.Shards), Y: r.ColdStartMs / 1e3})
			}
			for _, s := range []series{cpu, cold} {
				slices.SortFunc(s.xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
				ss = append(ss, s)
			}
		}
	}
	return linePlot("shards vs cost", "mcp.shards", "cost", false, ss)
}
