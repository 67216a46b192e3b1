package eureka

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
)

// TestPolarisFailoverAndOutage runs two real Polaris servers as one Eureka cluster whose
// replicas disagree (the first has an instance the second never got, as after a failed peer
// replication):
//   - the first stopped: the adapter moves to the second without Sink.Fail; the second's delta
//     does not add up to its hash code (a real mismatch), so it fetches everything from it;
//   - both stopped: Sink.Fail, and nothing is sent while they are down (merge holds the rest);
//   - both restarted (same ports and stores): the adapter reads again by itself and a change
//     made after the restart arrives.
func TestPolarisFailoverAndOutage(t *testing.T) {
	t.Parallel()
	var p1, p2 *servers.Polaris
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p1 = servers.StartPolaris(t) }()
	go func() { defer wg.Done(); p2 = servers.StartPolaris(t) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	both := []springInstance{
		{App: "ORDERS", ID: "o1", IP: "10.0.0.1", Port: 8080},
		{App: "ORDERS", ID: "o2", IP: "10.0.0.2", Port: 8080},
	}
	for _, in := range both {
		register(t, p1.EurekaURL(), in)
		register(t, p2.EurekaURL(), in)
	}
	register(t, p1.EurekaURL(), springInstance{App: "ONLY-ON-FIRST", ID: "f1", IP: "10.0.9.1", Port: 8080})

	a, sink := startAdapter(t, liveConfig(p1.EurekaURL(), p2.EurekaURL()))
	waitFor(t, 20*time.Second, "the first server's state", func() error {
		return wantCounts(sink, map[string]int{"ORDERS": 2, "ONLY-ON-FIRST": 1})
	})
	if got := a.Describe()["serverInUse"]; got != p1.EurekaURL() {
		t.Fatalf("server in use %v, want the first", got)
	}

	p1.Kill()
	took := waitFor(t, 20*time.Second, "the second server's state", func() error {
		if got := a.Describe()["serverInUse"]; got != p2.EurekaURL() {
			return fmt.Errorf("server in use %v", got)
		}
		if service(sink, "ONLY-ON-FIRST") != nil {
			return fmt.Errorf("ONLY-ON-FIRST, which the second server never had, is still there")
		}
		return wantCounts(sink, map[string]int{"ORDERS": 2})
	})
	t.Logf("moved to the second server in %v", took.Round(time.Millisecond))
	if fails := sink.Count("fail"); fails != 0 {
		t.Errorf("Sink.Fail was called %d times though the second server answered", fails)
	}
	if st := a.Describe()["sync"].(status); st.HashMismatches == 0 {
		t.Errorf("no hash mismatch after moving to a server with other data: %+v", st)
	}

	p2.Kill()
	waitFor(t, 20*time.Second, "Sink.Fail", func() error {
		if fails := sink.Count("fail"); fails == 0 {
			return fmt.Errorf("no Fail yet")
		}
		return nil
	})
	replaces := sink.Count("replace")
	time.Sleep(10 * liveInterval)
	if again := sink.Count("replace"); again != replaces {
		t.Errorf("%d states were sent while every server was down", again-replaces)
	}
	if err := wantCounts(sink, map[string]int{"ORDERS": 2}); err != nil {
		t.Errorf("while down: %v", err)
	}

	wg.Add(2)
	go func() { defer wg.Done(); p1.Restart() }()
	go func() { defer wg.Done(); p2.Restart() }()
	wg.Wait()
	o3 := springInstance{App: "ORDERS", ID: "o3", IP: "10.0.0.3", Port: 8080}
	register(t, p1.EurekaURL(), o3)
	register(t, p2.EurekaURL(), o3)
	took = waitFor(t, 30*time.Second, "convergence after the restart", func() error {
		return wantCounts(sink, map[string]int{"ORDERS": 3})
	})
	t.Logf("converged %v after the restart", took.Round(time.Millisecond))
}
