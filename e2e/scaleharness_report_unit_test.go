package e2e

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestHarnessReport checks the harness's reporting from its own JSON results, without servers:
// the table's MCP/CRD ratios, the JSON round trip, and that every plot is a PNG of the size asked
// for with something drawn on it.
func TestHarnessReport(t *testing.T) {
	dir := t.TempDir()
	rate := func(istiodMs float64, lat ...float64) []harnessRate {
		return []harnessRate{{Rate: 1, LatencyMs: lat, CPUPerChangeMs: map[string]float64{"istiod": istiodMs, "bridge": 1}}}
	}
	for _, n := range []int{1000, 10000} {
		f := float64(n / 1000)
		run := &harnessRun{Services: n / 5, Instances: n, Changes: 3, Rates: []float64{1}, Results: []*harnessResult{
			{Name: "inline/shards=1", Mode: hModeInline, Shards: 1, ColdStartMs: 500 * f, Rates: rate(10*f, 100, 200, 300)},
			{Name: "inline/shards=2", Mode: hModeInline, Shards: 2, ColdStartMs: 400 * f, Rates: rate(6*f, 100, 150, 200)},
			{Name: "crd-inline", Mode: hModeInline, CRD: true, Shards: 1, ColdStartMs: 900 * f, Rates: rate(40*f, 200, 400, 600)},
		}}
		if err := writeHarnessRun(filepath.Join(dir, "harness-"+strconv.Itoa(n)+".json"), run); err != nil {
			t.Fatal(err)
		}
	}
	run, err := readHarnessRun(filepath.Join(dir, "harness-1000.json"))
	if err != nil {
		t.Fatal(err)
	}
	table := harnessTable(run)
	// Columns: inline/shards=1, its MCP/CRD ratio, inline/shards=2, its ratio, crd-inline.
	for _, tc := range []struct {
		row  string
		want []string
	}{
		{"@1/s istiod CPU/change (ms)", []string{"10", "0.25", "6", "0.15", "40"}},
		{"@1/s change->EDS p50 (ms)", []string{"200", "0.50", "150", "0.38", "400"}},
		{"istiod start -> every endpoint (ms)", []string{"500", "0.56", "400", "0.44", "900"}},
		{"@1/s API write->EDS p50 (ms)", []string{"0", "-", "0", "-", "0"}}, // no CRD figure: no ratio
	} {
		var got []string
		for _, line := range strings.Split(table, "\n") {
			if strings.HasPrefix(line, tc.row+" ") {
				got = strings.Fields(line[len(tc.row):])
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("row %q = %q, want %q\n%s", tc.row, got, tc.want, table)
		}
	}
	pngs, err := plotHarnessDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pngs) != 5 {
		t.Fatalf("%d plots (%v), want 5: a latency plot per size and three over sizes", len(pngs), pngs)
	}
	for _, p := range pngs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		b := img.Bounds()
		if b.Dx() < 500 || b.Dy() < 300 {
			t.Errorf("%s is %v, want the 7x4.5 in size", p, b)
		}
		// Something other than the background: axes, lines, text.
		dark := 0
		for y := b.Min.Y; y < b.Max.Y; y += 3 {
			for x := b.Min.X; x < b.Max.X; x += 3 {
				if r, g, bl, _ := img.At(x, y).RGBA(); r+g+bl < 3*0x8000 {
					dark++
				}
			}
		}
		if dark < 100 {
			t.Errorf("%s has %d dark sample pixels: nothing drawn", p, dark)
		}
	}
}
