package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// churnServices is the services file at step i of a churn: five applications whose instance
// counts and weights move with i, and one that exists only at every fourth step, so a churn adds,
// changes and removes ServiceEntries.
func churnServices(i int) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for s := range 5 {
		fmt.Fprintf(&b, "  - name: churn-%d\n    instances:\n", s)
		for n := range 1 + (i+s)%3 {
			fmt.Fprintf(&b, "      - address: 127.0.50.%d\n        ports: {http: 8080}\n        weight: %d\n", 10*s+n+1, 10+10*((i+n)%9))
		}
	}
	if i%4 == 0 {
		b.WriteString("  - name: churn-extra\n    instances:\n      - address: 127.0.50.99\n        ports: {http: 8080}\n")
	}
	return b.String()
}

// churnWriter rewrites a services file with churnServices every interval until stopped.
type churnWriter struct {
	stopCh, done chan struct{}
	last, count  int
	err          error
}

func startChurn(path string, every time.Duration) *churnWriter {
	w := &churnWriter{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 1; ; i++ {
			select {
			case <-w.stopCh:
				return
			case <-time.After(every):
			}
			// Written beside and renamed over, as replaceFile does (not callable off the test's
			// goroutine): every write is one whole change.
			tmp := path + ".tmp"
			if w.err = os.WriteFile(tmp, []byte(churnServices(i)), 0o644); w.err == nil {
				w.err = os.Rename(tmp, path)
			}
			if w.err != nil {
				return
			}
			w.last, w.count = i, w.count+1
		}
	}()
	return w
}

// stop ends the churn and returns the last step written.
func (w *churnWriter) stop(t *testing.T) int {
	t.Helper()
	close(w.stopCh)
	<-w.done
	if w.err != nil {
		t.Fatalf("churn writer: %v", w.err)
	}
	return w.last
}

// istiodMatchesBridge compares Istiod's config store (namespace ns of /debug/configz) with what
// the bridge serves (/debug/resources of ns): the same resources, each at the same version and
// with the same spec.
func istiodMatchesBridge(t *testing.T, i *servers.Istiod, b *servers.Bridge, ns string) error {
	want := inNamespace(bridgeResources(t, b), ns)
	got := inNamespace(configz(t, i), ns)
	if d := diffVersions(versions(want), versions(got)); d != "" {
		return fmt.Errorf("Istiod's config store differs from the bridge's resources:\n%s", d)
	}
	specs := func(objs []istioObject) map[string]string {
		m := map[string]string{}
		for _, o := range objs {
			// JSON of the decoded spec: the same text whether it came from YAML or JSON.
			j, _ := json.Marshal(o.Spec)
			m[o.ID()] = string(j)
		}
		return m
	}
	ws, gs := specs(want), specs(got)
	for id, s := range ws {
		if gs[id] != s {
			return fmt.Errorf("%s: Istiod holds spec %s, the bridge serves %s", id, gs[id], s)
		}
	}
	return nil
}

// bridgeServesChurn checks that the bridge serves step i of churnServices: its ServiceEntries of
// ns are exactly the services of that step.
func bridgeServesChurn(t *testing.T, b *servers.Bridge, ns string, i int) error {
	var got []string
	for _, se := range inNamespace(bridgeResources(t, b, "ServiceEntry"), ns) {
		got = append(got, se.hosts()...)
	}
	slices.Sort(got)
	want := []string{}
	for s := range 5 {
		want = append(want, fmt.Sprintf("churn-%d.file", s))
	}
	if i%4 == 0 {
		want = append(want, "churn-extra.file")
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("the bridge serves hosts %v, want %v (step %d)", got, want, i)
	}
	return nil
}

// TestIstiodRestartUnderChanges is issue 17's "Istiod restarted while changes keep coming": a
// writer changes the services file every 100 ms (instances added and removed, weights, a
// ServiceEntry that comes and goes) from before Istiod is stopped until after it is ready again.
// Asserted: Istiod resyncs from the bridge and its config store reaches exactly the bridge's
// state (every resource, version and spec), including the last change written, and a sidecar
// of it sees each service's endpoints of that last change.
func TestIstiodRestartUnderChanges(t *testing.T) {
	t.Parallel()
	const ns = "irestart"
	services := writeFile(t, t.TempDir(), "services.yaml", churnServices(0))
	suite.Build(t, bridgePackage)
	suite.Cluster(t)
	b := startBridge(t, fileRegistryConfig(ns, services, ""))
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	servers.WaitFor(t, 30*time.Second, "Istiod to hold the bridge's state", func() error { return istiodMatchesBridge(t, cp.Istiod, b, ns) })

	w := startChurn(services, 100*time.Millisecond)
	time.Sleep(time.Second) // changes flowing before the restart
	restartAt := time.Now()
	cp.Istiod.Restart(t)
	ready := time.Since(restartAt)
	time.Sleep(time.Second) // and after
	last := w.stop(t)
	stopped := time.Now()
	servers.WaitFor(t, 10*time.Second, "the bridge to serve the last change", func() error { return bridgeServesChurn(t, b, ns, last) })
	servers.WaitFor(t, 30*time.Second, "Istiod to reach exactly the bridge's state", func() error { return istiodMatchesBridge(t, cp.Istiod, b, ns) })
	converged := time.Since(stopped)
	// And what a sidecar of the restarted Istiod sees: each service's endpoints at the last step.
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	for s := range 5 {
		var eps []string
		for n := range 1 + (last+s)%3 {
			eps = append(eps, fmt.Sprintf("127.0.50.%d:8080", 10*s+n+1))
		}
		view.WaitClusterEndpoints(t, outboundCluster(fmt.Sprintf("churn-%d.file", s), 8080, ""), eps, 20*time.Second)
	}
	t.Logf("measure: Istiod restarted under %d changes at ~10/s: ready again %v after the stop began; its config store equal to the bridge's %v after the last change",
		w.count, ready.Round(time.Millisecond), converged.Round(time.Millisecond))
}
