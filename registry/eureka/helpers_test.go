package eureka

import (
	"io"
	"log/slog"
	"sort"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/e2e/eurekatest"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// services returns what the sink holds sorted by name (the golden files' order: an
// application's kind depends on its metadata).
func services(s *testkit.RecordSink) []*registry.Service {
	out := s.Services()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// service returns the service of an application name, nil when absent.
func service(s *testkit.RecordSink, name string) *registry.Service {
	for _, svc := range s.Services() {
		if svc.Name == name {
			return svc
		}
	}
	return nil
}

// startAdapter runs an adapter on cfg until the test ends, on a sink that fails on anything but
// whole states.
func startAdapter(t testing.TB, cfg Config) (*Adapter, *testkit.RecordSink) {
	t.Helper()
	a, err := New(cfg.WithDefaults(), registry.Options{Name: "eureka", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return a, testkit.Run(t, a, testkit.WholeStatesOnly()).Sink
}

// The Eureka client calls are eurekatest's (shared with the pipeline and e2e tests), the wait
// helper testkit's.
type springInstance = eurekatest.Instance

var (
	waitFor   = testkit.WaitFor
	register  = eurekatest.Register
	cancel    = eurekatest.Cancel
	setStatus = eurekatest.SetStatus
)

var mustJSON = testkit.MustJSON
