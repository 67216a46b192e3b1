package zookeeper

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// loadTree reads a fixture tree file:
//
//	# comment
//	/literal/path/as/captured                   a node without data
//	/literal/path = data                          a node with data (rest of the line)
//	url /dubbo/<iface>/<category> <raw URL>      a URL child, encoded as Dubbo encodes it
//
// Provider and consumer nodes are ephemeral, as Dubbo creates them.
func loadTree(t testing.TB, file string) []zktest.Node {
	t.Helper()
	var out []zktest.Node
	for _, line := range testkit.Lines(t, file) {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var e zktest.Node
		if rest, ok := strings.CutPrefix(line, "url "); ok {
			parent, raw, _ := strings.Cut(rest, " ")
			e.Path = parent + "/" + zktest.JavaURLEncode(raw)
		} else if p, data, ok := strings.Cut(line, " = "); ok {
			e.Path, e.Data = p, []byte(data)
		} else {
			e.Path = line
		}
		e.Ephemeral = strings.Contains(e.Path, "/providers/") || strings.Contains(e.Path, "/consumers/") ||
			strings.HasPrefix(e.Path, "/services/") && strings.Count(e.Path, "/") == 3
		out = append(out, e)
	}
	return out
}

// writeTree creates the fixture nodes under prefix.
func writeTree(t testing.TB, c *zk.Conn, prefix string, entries []zktest.Node) {
	t.Helper()
	for _, e := range entries {
		zktest.Create(t, c, prefix+e.Path, e.Data, e.Ephemeral)
	}
}

type runningAdapter struct {
	a    *Adapter
	sink *testkit.RecordSink
	reg  *prometheus.Registry
}

// rejects returns the entries rejected and not accepted since (where -> reason).
func (r *runningAdapter) rejects() map[string]string {
	m, _ := r.sink.Rejects()
	return m
}

// registryOptions are the adapter options of a test: a private metrics registry, logs on -v.
func registryOptions() registry.Options {
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	return registry.Options{Name: "zk", Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})), Metrics: prometheus.NewRegistry()}
}

// startAdapter runs an adapter until the test ends.
func startAdapter(t testing.TB, cfg Config) *runningAdapter {
	t.Helper()
	opts := registryOptions()
	reg := opts.Metrics.(*prometheus.Registry)
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The adapter's first call must be a Replace: the sink panics on an Upsert before it.
	return &runningAdapter{a: a, sink: testkit.Run(t, a, testkit.ReplaceFirst()).Sink, reg: reg}
}

// waitSynced waits for the first Replace.
func (r *runningAdapter) waitSynced(t testing.TB) {
	t.Helper()
	r.sink.WaitSynced(t, 30*time.Second)
}

func dubboKey(iface, group, version string) registry.Key {
	return registry.Key{Kind: registry.KindDubboInterface, Name: iface, Group: group, Version: version}
}

func instanceIDs(s *registry.Service) []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		ids[i] = in.ID
	}
	return ids
}
