package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// TestZooKeeperPartialAnswers is issue 17's "partial answers" for ZooKeeper, with a real server:
// ZooKeeper answers the bridge's reads of every interface but one, whose providers node an
// administrator has locked with a digest ACL the bridge lacks (NoAuth; a real server cannot be
// made to stall one subtree's reads alone: it answers a session's requests in order, so one
// stalled read is a hung server, TestRegistryHung). Meanwhile a provider of the locked interface
// joins (its event makes the bridge read the node again, and fail) and one of another interface
// joins. Asserted: no MCP response from the lock to the convergence lacks an endpoint of either
// interface (no service flaps out and in); the other interface's change is served while the lock
// holds; the refused read is reported among the registry's rejected entries on
// /debug/registries; once the ACL is opened again the next
// resync (resyncInterval 2s) serves the locked interface's new provider.
func TestZooKeeperPartialAnswers(t *testing.T) {
	t.Parallel()
	const (
		locked, open         = "com.example.Locked", "com.example.Open"
		lockedHost, openHost = "com.example.locked", "com.example.open"
		admin                = "admin:secret"
	)
	z := servers.StartZooKeeper(t)
	c := zktest.Session(t, z.Addr())
	if err := c.AddAuth("digest", []byte(admin)); err != nil {
		t.Fatal(err)
	}
	register := func(iface, ip string) {
		zktest.Create(t, c, zktest.ProviderPath("/dubbo", iface, zkDubbo2URL(iface, ip)), nil, false)
	}
	register(locked, "127.0.60.1")
	register(open, "127.0.61.1")
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: suite.Build(t, bridgePackage), Config: fmt.Sprintf(
		"registries:\n  - name: partial\n    type: zookeeper\n    zookeeper:\n      servers: [%q]\n      resyncInterval: 2s\n", z.Addr())})
	servers.WaitFor(t, 30*time.Second, "both interfaces served", func() error {
		if err := hungServes(t, b, lockedHost, []string{"127.0.60.1"}); err != nil {
			return err
		}
		return hungServes(t, b, openHost, []string{"127.0.61.1"})
	})
	mcp := watchAll(t, b.MCPAddr, hostileTypeURL("ServiceEntry"))

	lockedAt := time.Now()
	providers := "/dubbo/" + locked + "/providers"
	user, pass, _ := strings.Cut(admin, ":")
	if _, err := c.SetACL(providers, zk.DigestACL(zk.PermAll, user, pass), -1); err != nil {
		t.Fatal(err)
	}
	register(locked, "127.0.60.2") // the bridge is told, reads again, and is refused
	register(open, "127.0.61.2")
	servers.WaitFor(t, 20*time.Second, "the other interface's change served while one is locked", func() error {
		return hungServes(t, b, openHost, []string{"127.0.61.1", "127.0.61.2"})
	})
	servers.WaitFor(t, 20*time.Second, "the refused read reported on /debug/registries", func() error {
		// The registry's rejected entries: {"where": <path>, "reason": "read-failed", ...}.
		page := string(bridgeAdmin(t, b, "/debug/registries"))
		if strings.Contains(page, providers) && strings.Contains(page, "not authenticated") {
			return nil
		}
		return fmt.Errorf("/debug/registries shows no refused read of %s:\n%s", providers, page)
	})
	// Two resyncs while locked: the locked interface stays at what was last read.
	time.Sleep(4 * time.Second)
	if err := hungServes(t, b, lockedHost, []string{"127.0.60.1"}); err != nil {
		t.Errorf("while its providers node is locked: %v", err)
	}

	openedAt := time.Now()
	if _, err := c.SetACL(providers, zk.WorldACL(zk.PermAll), -1); err != nil {
		t.Fatal(err)
	}
	servers.WaitFor(t, 20*time.Second, "the locked interface's new provider once readable", func() error {
		return hungServes(t, b, lockedHost, []string{"127.0.60.1", "127.0.60.2"})
	})
	t.Logf("measure: ZooKeeper partial answers: locked interface held for %v; its change served %v after the ACL was opened (resyncInterval 2s)",
		openedAt.Sub(lockedAt).Round(time.Millisecond), time.Since(openedAt).Round(time.Millisecond))
	flaps := 0
	responses := mcp.since(lockedAt)
	for _, a := range responses {
		if !containsString(a.resp, "127.0.60.1") || !containsString(a.resp, "127.0.61.1") {
			flaps++
			t.Errorf("an MCP response %v after the lock lacks an endpoint", a.at.Sub(lockedAt).Round(time.Millisecond))
		}
	}
	t.Logf("measure: MCP responses since the lock: %d, lacking an endpoint: %d", len(responses), flaps)
}
