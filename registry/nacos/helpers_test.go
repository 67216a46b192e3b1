package nacos

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// running is an adapter started for a test, its sink recording every call.
type running struct {
	*testkit.Running
	a *Adapter
}

// testConfig is a configuration with short intervals for a server at addr.
func testConfig(t testing.TB, addr string) Config {
	return Config{
		Servers:        []string{addr},
		Flavor:         FlavorPolaris,
		PollInterval:   300 * time.Millisecond,
		RecoveryDelay:  500 * time.Millisecond,
		ResyncInterval: -1,
		Timeout:        2 * time.Second,
		CacheDir:       t.TempDir(),
	}
}

// startAdapter runs an adapter (on the SDK, or on the clients of factory when it is not nil)
// whose sink records everything.
func startAdapter(t testing.TB, cfg Config, factory clientFactory) *running {
	t.Helper()
	a, err := newAdapter(cfg, registry.Options{Name: "nacos", Logger: testkit.Logger(t), Metrics: prometheus.NewRegistry()}, factory)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &running{Running: testkit.Run(t, a), a: a}
}
