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

// bridgeAdmin fetches one of the bridge's admin pages.
func bridgeAdmin(t *testing.T, b *servers.Bridge, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// bridgeResources returns what the bridge says it serves (/debug/resources), optionally only the
// given kinds.
func bridgeResources(t *testing.T, b *servers.Bridge, kinds ...string) []istioObject {
	t.Helper()
	body := bridgeAdmin(t, b, "/debug/resources")
	var all []istioObject
	for _, o := range decodeYAMLStream[istioObject](t, "/debug/resources", body) {
		if o.Kind != "" {
			all = append(all, o)
		}
	}
	return filterKinds(all, kinds)
}

// decodeYAMLStream decodes every document of a YAML stream (what names it in errors).
func decodeYAMLStream[T any](t *testing.T, what string, body []byte) []T {
	t.Helper()
	var out []T
	dec := yaml.NewDecoder(bytes.NewReader(body))
	for {
		var v T
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding %s: %v\n%.2000s", what, err, body)
		}
		out = append(out, v)
	}
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

// registryStatus is the part of the bridge's /debug/registries the tests read: the merge layer's
// view of one registry, with its adapter's reachability beside it.
type registryStatus struct {
	Name       string `json:"name"`
	Connected  bool   `json:"connected"`
	Stale      bool   `json:"stale"`
	Protected  bool   `json:"protected"`
	Protection *struct {
		Reason string `json:"reason"`
	} `json:"protection"`
	LastError         string `json:"lastError"`
	Services          int    `json:"services"`
	Instances         int    `json:"instances"`
	ReportedServices  int    `json:"reportedServices"`
	ReportedInstances int    `json:"reportedInstances"`
	Adapter           struct {
		Reported   bool // the adapter publishes a status of its own (Nacos does)
		Reachable  bool `json:"reachable"`
		Recovering bool `json:"recovering"`
	} `json:"-"`
}

// bridgeRegistry reads registry name's entries of the bridge's /debug/registries.
func bridgeRegistry(b *servers.Bridge, name string) (registryStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/registries")
	if err != nil {
		return registryStatus{}, err
	}
	var page struct {
		Registries []registryStatus `json:"registries"`
		Adapters   map[string]struct {
			Status struct {
				Reachable  bool `json:"reachable"`
				Recovering bool `json:"recovering"`
			} `json:"status"`
		} `json:"adapters"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return registryStatus{}, fmt.Errorf("decoding /debug/registries: %w", err)
	}
	for _, r := range page.Registries {
		if r.Name == name {
			if a, ok := page.Adapters[name]; ok {
				r.Adapter.Reported, r.Adapter.Reachable, r.Adapter.Recovering = true, a.Status.Reachable, a.Status.Recovering
			}
			return r, nil
		}
	}
	return registryStatus{}, fmt.Errorf("/debug/registries lists no registry %q: %s", name, body)
}

// invalidEntry is one entry of the bridge's /debug/invalid.
type invalidEntry struct {
	Collection, Namespace, Name, Source, Reason, Detail string
}

// bridgeInvalid returns what the bridge did not emit, and why.
func bridgeInvalid(t *testing.T, b *servers.Bridge) []invalidEntry {
	t.Helper()
	body := bridgeAdmin(t, b, "/debug/invalid")
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

// waitOwnedClusters waits until the outbound clusters of hosts are exactly the keys of want, each
// with exactly its endpoints (address and weight; an empty list: a cluster with an empty EDS
// assignment), and returns when the last of those clusters changed: when the state became
// visible. Clusters of other hosts are ignored, so a test sees only the registry it drives.
func waitOwnedClusters(t *testing.T, v *xdsview.View, hosts []string, what string, want map[string][]xdsview.Endpoint, timeout time.Duration) time.Time {
	t.Helper()
	var seen time.Time
	v.WaitFor(t, what, timeout, func(s *xdsview.Snapshot) error {
		if err := ownedClustersMatch(s, hosts, want); err != nil {
			return err
		}
		seen = time.Time{}
		for _, typ := range []xdsview.Type{xdsview.CDS, xdsview.EDS} {
			for c, at := range s.Changed[typ] {
				if ownedBy(hosts, c) && at.After(seen) {
					seen = at
				}
			}
		}
		return nil
	})
	return seen
}

// ownedBy tells whether an outbound cluster belongs to one of hosts.
func ownedBy(hosts []string, cluster string) bool {
	return strings.HasPrefix(cluster, "outbound|") && slices.ContainsFunc(hosts, func(h string) bool { return strings.HasSuffix(cluster, "|"+h) })
}

func ownedClustersMatch(s *xdsview.Snapshot, hosts []string, want map[string][]xdsview.Endpoint) error {
	var got []string
	for _, c := range xdsview.ClusterNames(s, "outbound|") {
		if ownedBy(hosts, c) {
			got = append(got, c)
		}
	}
	if w := slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
		return fmt.Errorf("clusters %v, want %v", got, w)
	}
	var errs []error
	for _, c := range got {
		eps, ok := s.Endpoints[c]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no EDS answer yet", c))
			continue
		}
		w := slices.Clone(want[c])
		slices.SortFunc(w, func(a, b xdsview.Endpoint) int { return strings.Compare(a.Address, b.Address) })
		if !slices.EqualFunc(eps, w, func(g, w xdsview.Endpoint) bool { return g.Address == w.Address && g.Weight == w.Weight }) {
			errs = append(errs, fmt.Errorf("%s: endpoints %s, want %s", c, describeEndpoints(eps), describeEndpoints(w)))
		}
	}
	return errors.Join(errs...)
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
