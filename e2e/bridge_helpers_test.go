package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// bridgePackage is the bridge's main package, built once per test binary.
const bridgePackage = "./cmd/mcp-bridge"

// startBridge starts the bridge with the configuration text cfg, or with none (its embedded
// example services) when cfg is empty.
func startBridge(t *testing.T, cfg string) *servers.Bridge {
	t.Helper()
	return servers.StartBridge(t, servers.BridgeOptions{
		Binary:   suite.Build(t, bridgePackage),
		Config:   cfg,
		Embedded: cfg == "",
	})
}

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile writes content next to path and renames it over path, as editors and Kubernetes'
// ConfigMap updates do: the bridge never reads a half-written file, so every write is one change.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fileRegistryConfig is a bridge configuration with one file registry reading services (a path)
// into namespace name, plus extra top-level YAML (translate options, staticResources, mcp.tls).
func fileRegistryConfig(name, services, extra string) string {
	return fmt.Sprintf("registries:\n  - name: %s\n    type: file\n    file: {path: %q}\n%s", name, services, extra)
}

// outboundCluster names an outbound cluster as Istio does: outbound|<port>|<subset>|<host>.
func outboundCluster(host string, port int, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// istioObject is one resource as Istiod's /debug/configz or the bridge's /debug/resources shows it.
type istioObject struct {
	Kind       string `json:"kind" yaml:"kind"`
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	Metadata   struct {
		Name            string            `json:"name" yaml:"name"`
		Namespace       string            `json:"namespace" yaml:"namespace"`
		ResourceVersion string            `json:"resourceVersion" yaml:"resourceVersion"`
		Labels          map[string]string `json:"labels" yaml:"labels"`
		Annotations     map[string]string `json:"annotations" yaml:"annotations"`
	} `json:"metadata" yaml:"metadata"`
	Spec map[string]any `json:"spec" yaml:"spec"`
}

// ID is "Kind namespace/name".
func (o istioObject) ID() string {
	return o.Kind + " " + o.Metadata.Namespace + "/" + o.Metadata.Name
}

// hosts returns spec.hosts of a ServiceEntry or VirtualService.
func (o istioObject) hosts() []string {
	var out []string
	if hs, ok := o.Spec["hosts"].([]any); ok {
		for _, h := range hs {
			out = append(out, fmt.Sprint(h))
		}
	}
	return out
}

// configz returns what Istiod's config store holds (every config source), optionally only the
// given kinds.
func configz(t *testing.T, i *servers.Istiod, kinds ...string) []istioObject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := i.Debug(ctx, "/debug/configz")
	if err != nil {
		t.Fatal(err)
	}
	var all []istioObject
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatalf("decoding /debug/configz: %v\n%.2000s", err, body)
	}
	return filterKinds(all, kinds)
}

// bridgeResources returns what the bridge says it serves (/debug/resources), optionally only the
// given kinds.
func bridgeResources(t *testing.T, b *servers.Bridge, kinds ...string) []istioObject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/resources")
	if err != nil {
		t.Fatal(err)
	}
	var all []istioObject
	dec := yaml.NewDecoder(bytes.NewReader(body))
	for {
		var o istioObject
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding /debug/resources: %v\n%.2000s", err, body)
		}
		if o.Kind != "" {
			all = append(all, o)
		}
	}
	return filterKinds(all, kinds)
}

func filterKinds(objs []istioObject, kinds []string) []istioObject {
	if len(kinds) == 0 {
		return objs
	}
	var out []istioObject
	for _, o := range objs {
		if slices.Contains(kinds, o.Kind) {
			out = append(out, o)
		}
	}
	return out
}

// inNamespace keeps the objects of one namespace.
func inNamespace(objs []istioObject, ns string) []istioObject {
	var out []istioObject
	for _, o := range objs {
		if o.Metadata.Namespace == ns {
			out = append(out, o)
		}
	}
	return out
}

// versions maps "Kind namespace/name" to resourceVersion.
func versions(objs []istioObject) map[string]string {
	m := make(map[string]string, len(objs))
	for _, o := range objs {
		m[o.ID()] = o.Metadata.ResourceVersion
	}
	return m
}

// diffVersions describes how got differs from want, "" when equal.
func diffVersions(want, got map[string]string) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		switch g, ok := got[k]; {
		case !ok:
			d = append(d, "missing "+k)
		case g != want[k]:
			d = append(d, fmt.Sprintf("%s: version %s, want %s", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			d = append(d, "unexpected "+k)
		}
	}
	return strings.Join(d, "\n")
}

// invalidEntry is one entry of the bridge's /debug/invalid.
type invalidEntry struct {
	Collection, Namespace, Name, Source, Reason, Detail string
}

// bridgeInvalid returns what the bridge did not emit, and why.
func bridgeInvalid(t *testing.T, b *servers.Bridge) []invalidEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/invalid")
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Invalid []invalidEntry `json:"invalid"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decoding /debug/invalid: %v\n%s", err, body)
	}
	return out.Invalid
}

// metricSum adds up the samples of a Prometheus text exposition whose name is name and whose
// labels include every pair of want.
func metricSum(text, name string, want map[string]string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name sharing the prefix
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		if hasLabels(labels, want) {
			sum += v
		}
	}
	return sum
}

func hasLabels(labels string, want map[string]string) bool {
	for k, v := range want {
		if !strings.Contains(labels, k+`="`+v+`"`) {
			return false
		}
	}
	return true
}

// istiodMetrics fetches Istiod's metrics text.
func istiodMetrics(t *testing.T, i *servers.Istiod) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := i.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantEndpoints waits until every cluster of want has exactly the given endpoints (ip:port,
// weight, locality when set) in the view, and returns the latest time at which one of them
// changed: when the whole expected state first became visible.
func wantEndpoints(t *testing.T, v *xdsview.View, what string, want map[string][]xdsview.Endpoint, timeout time.Duration) time.Time {
	t.Helper()
	var seen time.Time
	v.WaitFor(t, what, timeout, func(s *xdsview.Snapshot) error {
		var errs []error
		latest := time.Time{}
		for _, c := range slices.Sorted(maps.Keys(want)) {
			if err := endpointsMatch(s, c, want[c]); err != nil {
				errs = append(errs, err)
				continue
			}
			if at := s.Changed[xdsview.EDS][c]; at.After(latest) {
				latest = at
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		seen = latest
		return nil
	})
	return seen
}

// endpointsMatch compares a cluster's endpoints with want on the fields want sets: Address always,
// Weight and Locality when non-zero.
func endpointsMatch(s *xdsview.Snapshot, clusterName string, want []xdsview.Endpoint) error {
	if _, ok := s.Clusters[clusterName]; !ok {
		return fmt.Errorf("no cluster %s", clusterName)
	}
	got, ok := s.Endpoints[clusterName]
	if !ok {
		return fmt.Errorf("cluster %s: no EDS answer yet", clusterName)
	}
	w := slices.Clone(want)
	slices.SortFunc(w, func(a, b xdsview.Endpoint) int { return strings.Compare(a.Address, b.Address) })
	if len(got) != len(w) {
		return fmt.Errorf("cluster %s: endpoints %s, want %s", clusterName, describeEndpoints(got), describeEndpoints(w))
	}
	for i := range w {
		g := got[i]
		if g.Address != w[i].Address || (w[i].Weight != 0 && g.Weight != w[i].Weight) ||
			(w[i].Locality != "" && g.Locality != w[i].Locality) {
			return fmt.Errorf("cluster %s: endpoints %s, want %s", clusterName, describeEndpoints(got), describeEndpoints(w))
		}
	}
	return nil
}

func describeEndpoints(eps []xdsview.Endpoint) string {
	parts := make([]string, len(eps))
	for i, e := range eps {
		parts[i] = fmt.Sprintf("%s(w=%d %s)", e.Address, e.Weight, e.Locality)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
