package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// istiodUpdateMetrics are the Istiod counters that move when its config changes: every config
// event from a source (pilot_inbound_updates by type: config, eds, svc, svcdelete) and every
// push it triggers (pilot_push_triggers by reason).
var istiodUpdateMetrics = []string{"pilot_inbound_updates", "pilot_push_triggers"}

// TestBridgeRestartStable is issue 3 test 4: a bridge restarted with the same registry content
// causes no config update in Istiod, by Istiod's metrics, its push log and its config store. Istiod reconnects on its own (its MCP client retries from
// 0.5 s), finds every resource at the version it has, and changes nothing; the sidecar view keeps
// its endpoints throughout.
//
// "Nothing changed" needs an observation window. Rather than sleeping, the test makes a marker
// change after the reconnect: Istiod handles config events in order, so once the marker is visible
// any update the reconnect caused has been counted. The marker (one instance's weight) was made
// once before the restart as well, as a calibration: the counters must move by exactly what that
// one change costs, and Istiod's config store must hold exactly the versions it held after the
// same change before the restart (versions are content hashes).
func TestBridgeRestartStable(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join(servers.RepoRoot(t), "registry", "file", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	original := string(example)
	const canary = "      - address: 127.0.10.1\n"
	if !strings.Contains(original, canary) {
		t.Fatalf("registry/file/example.yaml no longer has an instance 127.0.10.1")
	}
	marked := strings.Replace(original, canary, canary+"        weight: 50\n", 1)
	services := writeFile(t, t.TempDir(), "services.yaml", original)
	suite.Build(t, bridgePackage)
	suite.Cluster(t)
	start := time.Now()
	b := startBridge(t, fileRegistryConfig("restart", services, "translate: {endpointMode: workloadEntry}\n"))
	bridgeAt := time.Now()
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	istiodAt := time.Now()
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
	want := exampleEndpoints()
	wantEndpoints(t, view, "the example services", want, 20*time.Second)
	t.Logf("measure: warm start-up (cluster up): bridge ready %v, istiod ready %v, endpoints in the sidecar view %v; total %v",
		bridgeAt.Sub(start).Round(time.Millisecond), istiodAt.Sub(bridgeAt).Round(time.Millisecond),
		time.Since(istiodAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	greetings := outboundCluster(greetingsHost, dubboPort, "")
	wantMarked := maps.Clone(want)
	wantMarked[greetings] = slices.Clone(want[greetings])
	wantMarked[greetings][0].Weight = 50

	type state struct {
		metrics map[string]float64
		view    map[xdsview.Type]xdsview.TypeStats
	}
	observe := func() state {
		text := istiodMetrics(t, cp.Istiod)
		m := map[string]float64{}
		for _, name := range istiodUpdateMetrics {
			for k, v := range metricByLabel(text, name, "type") {
				m[name+"{type="+k+"}"] = v
			}
		}
		return state{m, view.Stats()}
	}
	delta := func(a, b state) map[string]float64 {
		d := map[string]float64{}
		for k := range b.metrics {
			if v := b.metrics[k] - a.metrics[k]; v != 0 {
				d[k] = v
			}
		}
		for typ, st := range b.view {
			if n := st.Responses - a.view[typ].Responses; n != 0 {
				d["sidecar view responses "+typeName(typ)] = float64(n)
			}
		}
		return d
	}
	mark := func(content string, want map[string][]xdsview.Endpoint, what string) {
		t.Helper()
		replaceFile(t, services, content)
		wantEndpoints(t, view, what, want, 10*time.Second)
	}

	// Calibration: the first marker change warms up, the way back is what one change costs.
	mark(marked, wantMarked, "calibration: weight 50")
	markedVersions := versions(inNamespace(configz(t, cp.Istiod), "restart"))
	before := observe()
	mark(original, want, "calibration: weight back to 100")
	oneChange := delta(before, observe())
	if len(oneChange) == 0 {
		t.Fatal("a weight change moved none of Istiod's update counters: they cannot show anything")
	}
	t.Logf("one weight change moves: %v", oneChange)

	before = observe()
	pushesBefore := pushLines(cp.Istiod.Log())
	closedBefore := strings.Count(cp.Istiod.Log(), "connection closed with err")
	receivedBefore := countReceived(cp.Istiod.Log(), "ServiceEntry")
	restartAt := time.Now()
	b.Restart(t)
	restarted := time.Now()
	// Istiod reconnects by itself: its log shows the lost stream and a new ServiceEntry response,
	// and the new bridge sees a stream on which Istiod has ACKed every type.
	servers.WaitFor(t, 20*time.Second, "Istiod to reconnect to the restarted bridge", func() error {
		log := cp.Istiod.Log()
		if n := strings.Count(log, "connection closed with err"); n == closedBefore {
			return fmt.Errorf("Istiod's log shows no lost MCP stream")
		}
		if n := countReceived(log, "ServiceEntry"); n == receivedBefore {
			return fmt.Errorf("Istiod's log shows no ServiceEntry response since the restart")
		}
		return bridgeClientSynced(b, restartAt)
	})
	reconnected := time.Now()
	t.Logf("measure: bridge restart: stopped and ready again in %v; Istiod reconnected and ACKed everything %v after that",
		restarted.Sub(restartAt).Round(time.Millisecond), reconnected.Sub(restarted).Round(time.Millisecond))

	mark(marked, wantMarked, "the marker change after the restart")
	if d := delta(before, observe()); !maps.Equal(d, oneChange) {
		t.Errorf("restart + one change moved Istiod's counters by %v; one change alone moves them by %v", d, oneChange)
	}
	// Istiod's own account: one push since the restart, for the marker's endpoints alone.
	if pushes := pushLines(cp.Istiod.Log())[len(pushesBefore):]; len(pushes) != 1 || !strings.Contains(pushes[0], "Endpoints/restart/"+greetingsHost+":") {
		t.Errorf("Istiod's pushes since the restart, want one for Endpoints/restart/%s:\n%s", greetingsHost, strings.Join(pushes, "\n"))
	}
	if d := diffVersions(markedVersions, versions(inNamespace(configz(t, cp.Istiod), "restart"))); d != "" {
		t.Errorf("after the restart and the marker, Istiod's config store differs from after the same change before the restart:\n%s", d)
	}
	// Throughout: no endpoint of any cluster but the marker's changed since before the restart.
	s := view.Snapshot()
	for c := range want {
		if at := s.Changed[xdsview.EDS][c]; c != greetings && at.After(restartAt) {
			t.Errorf("the endpoints of %s changed at %v, after the restart", c, at.Format(time.RFC3339Nano))
		}
	}
	if connected, err := view.Connected(); !connected {
		t.Errorf("the sidecar view lost Istiod: %v", err)
	}

	// Under load (issue 17): the same restart while a writer keeps changing the file (one
	// instance's weight, ~10 changes/s, through the downtime and past the reconnect).
	restartUnderLoad(t, b, cp.Istiod, view, services, original, canary, func() map[string]float64 { return observe().metrics }, oneChange)
}

// restartUnderLoad restarts the bridge while a writer keeps changing the weight of the canary
// instance. Asserted: Istiod reconnects; its counters move only the way weight changes move them
// (no config-triggered full push: pilot_push_triggers{type=config} stays put); every resource but
// the canary's WorkloadEntry keeps its version in Istiod's config store; every ServiceEntry keeps
// its VIPs; the last weight written reaches the sidecar view.
func restartUnderLoad(t *testing.T, b *servers.Bridge, istiod *servers.Istiod, view *xdsview.View, services, original, canary string,
	observe func() map[string]float64, oneChange map[string]float64) {
	const canaryIP = "127.0.10.1"
	before := inNamespace(configz(t, istiod), "restart")
	metricsBefore := observe()
	weighted := func(w int) string {
		return strings.Replace(original, canary, canary+fmt.Sprintf("        weight: %d\n", w), 1)
	}
	var (
		stop    = make(chan struct{})
		done    = make(chan struct{})
		last    int
		written int
		werr    error
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			w := 10 + 10*(i%9) // 10..90
			tmp := services + ".tmp"
			if werr = os.WriteFile(tmp, []byte(weighted(w)), 0o644); werr == nil {
				werr = os.Rename(tmp, services)
			}
			if werr != nil {
				return
			}
			last, written = w, written+1
		}
	}()
	time.Sleep(time.Second) // changes flowing before the restart
	restartAt := time.Now()
	b.Restart(t)
	servers.WaitFor(t, 20*time.Second, "Istiod to reconnect to the bridge restarted under load", func() error {
		return bridgeClientSynced(b, restartAt)
	})
	reconnected := time.Since(restartAt)
	time.Sleep(time.Second) // changes flowing after the reconnect
	close(stop)
	<-done
	stopped := time.Now()
	if werr != nil {
		t.Fatalf("the writer: %v", werr)
	}
	want := exampleEndpoints()
	greetings := outboundCluster(greetingsHost, dubboPort, "")
	want[greetings] = slices.Clone(want[greetings])
	want[greetings][0].Weight = uint32(last)
	converged := wantEndpoints(t, view, fmt.Sprintf("the last weight written (%d)", last), want, 20*time.Second)
	t.Logf("measure: restart under load (%d weight changes at ~10/s): Istiod reconnected and ACKed everything %v after the restart began; last change in the sidecar view %v after the writer stopped",
		written, reconnected.Round(time.Millisecond), converged.Sub(stopped).Round(time.Millisecond))

	moved := observe()
	for k, v := range moved {
		d := v - metricsBefore[k]
		if d != 0 && oneChange[k] == 0 {
			t.Errorf("Istiod's %s moved by %v during the restart under load; weight changes move only %v", k, d, oneChange)
		}
	}
	if d := moved["pilot_push_triggers{type=config}"] - metricsBefore["pilot_push_triggers{type=config}"]; d != 0 {
		t.Errorf("Istiod made %v config-triggered full pushes during the restart under load, want 0", d)
	}
	after := inNamespace(configz(t, istiod), "restart")
	isCanary := func(o istioObject) bool { return o.Kind == "WorkloadEntry" && o.Spec["address"] == canaryIP }
	wantV, gotV := versions(slices.DeleteFunc(slices.Clone(before), isCanary)), versions(slices.DeleteFunc(slices.Clone(after), isCanary))
	if d := diffVersions(wantV, gotV); d != "" {
		t.Errorf("resources other than the canary's WorkloadEntry changed version across the restart under load:\n%s", d)
	}
	if v, w := serviceEntryVIPs(after), serviceEntryVIPs(before); !maps.EqualFunc(v, w, slices.Equal) {
		t.Errorf("ServiceEntry VIPs changed across the restart under load: %v, want %v", v, w)
	}
}

// serviceEntryVIPs maps each ServiceEntry to its spec.addresses.
func serviceEntryVIPs(objs []istioObject) map[string][]string {
	out := map[string][]string{}
	for _, o := range filterKinds(objs, []string{"ServiceEntry"}) {
		var vips []string
		if as, ok := o.Spec["addresses"].([]any); ok {
			for _, a := range as {
				vips = append(vips, fmt.Sprint(a))
			}
		}
		out[o.ID()] = vips
	}
	return out
}

// bridgeClientSynced checks the bridge's /debug/clients for a stream opened after since on which
// the client has ACKed the current version of every type it subscribed to.
func bridgeClientSynced(b *servers.Bridge, since time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := b.Admin(ctx, "/debug/clients")
	if err != nil {
		return err
	}
	var page struct {
		Clients []struct {
			ConnectedSince time.Time `json:"connectedSince"`
			Types          []struct {
				TypeURL string `json:"typeUrl"`
				Synced  bool   `json:"synced"`
			} `json:"types"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("decoding /debug/clients: %w", err)
	}
	clients := page.Clients
	for _, c := range clients {
		if !c.ConnectedSince.After(since) || len(c.Types) == 0 {
			continue
		}
		var waiting []string
		for _, typ := range c.Types {
			if !typ.Synced {
				waiting = append(waiting, typ.TypeURL)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		return fmt.Errorf("the new stream has not ACKed %v", waiting)
	}
	return fmt.Errorf("no stream opened since %v on the bridge (%d streams)", since.Format(time.RFC3339Nano), len(clients))
}

// pushLines returns Istiod's "Push debounce stable" log lines: one per push, naming what triggered it.
func pushLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Push debounce stable") {
			out = append(out, line)
		}
	}
	return out
}

// countReceived counts Istiod's MCP client log lines for a response of kind: pkg/adsc logs
// "Received type=<group>/<version>/<Kind> count=N nonce=..." for every response.
func countReceived(log, kind string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Received") && strings.Contains(line, "/"+kind+" ") {
			n++
		}
	}
	return n
}

func typeName(t xdsview.Type) string {
	switch t {
	case xdsview.CDS:
		return "CDS"
	case xdsview.EDS:
		return "EDS"
	case xdsview.LDS:
		return "LDS"
	case xdsview.RDS:
		return "RDS"
	}
	return string(t)
}

// metricByLabel returns the samples of metric name by the value of label (summed over the
// other labels).
func metricByLabel(text, name, label string) map[string]float64 {
	re := regexp.MustCompile(`(?:^|[{,])` + regexp.QuoteMeta(label) + `="([^"]*)"`)
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		out[m[1]] += metricSum(line, name, nil)
	}
	return out
}
