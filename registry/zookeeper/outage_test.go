package zookeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// TestZooKeeperRestart stops ZooKeeper under the adapter and starts it again on the same port
// and data: while it is down the adapter reports the failure and removes nothing; when it is
// back the adapter converges on what changed.
func TestZooKeeperRestart(t *testing.T) {
	t.Parallel() // mostly waiting on timers and sessions
	z := servers.StartZooKeeper(t)
	key := dubboKey("com.example.Live", "", "")
	prov := providerConn(t, z.Addr(), 10*time.Second, nil) // survives a short server outage
	p1 := zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.1.0.1", 20880, ""))
	p2 := zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.1.0.2", 20880, ""))
	zktest.Create(t, prov, p1, nil, true)
	zktest.Create(t, prov, p2, nil, true)
	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: -1, ReconnectBackoff: 100 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond})
	r.waitSynced(t)
	r.sink.Wait(t, 10*time.Second, "both providers", wantInstances(r, key, "10.1.0.1:20880", "10.1.0.2:20880"))
	replaces, deletes := r.sink.Count("replace"), r.sink.Count("delete")

	z.Stop()
	r.sink.Wait(t, 10*time.Second, "the failure reported", func() error {
		if failed := r.sink.Failed(); !failed {
			return errors.New("no Fail")
		}
		return nil
	})
	time.Sleep(time.Second) // down for a while: nothing may be removed
	if d := r.sink.Count("delete"); d != deletes {
		t.Fatalf("Delete sent while ZooKeeper was down")
	}
	if err := wantInstances(r, key, "10.1.0.1:20880", "10.1.0.2:20880")(); err != nil {
		t.Fatalf("while ZooKeeper was down: %v", err)
	}
	if r.a.Describe()["connected"] != false {
		t.Error("status page says connected while ZooKeeper is down")
	}

	z.Restart()
	r.sink.Wait(t, 30*time.Second, "a Replace after the outage", func() error {
		if n, failed := r.sink.Count("replace"), r.sink.Failed(); n == replaces || failed {
			return fmt.Errorf("replaces %d, failed %v", n, failed)
		}
		return nil
	})
	// Changes after the outage arrive through the restored watches.
	if err := servers.Poll(20*time.Second, func() error {
		if prov.State() != zk.StateHasSession {
			return fmt.Errorf("provider session %v", prov.State())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	zktest.Delete(t, prov, p1)
	zktest.Create(t, prov, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.1.0.3", 20880, "")), nil, true)
	r.sink.Wait(t, 15*time.Second, "convergence after the restart", wantInstances(r, key, "10.1.0.2:20880", "10.1.0.3:20880"))
}

// TestAdapterSessionExpiry partitions the adapter from ZooKeeper until the server expires its
// session, changes the tree meanwhile, and checks that the adapter holds its state during the
// partition, gets a new session, sets its watches again and converges with a full resync.
func TestAdapterSessionExpiry(t *testing.T) {
	t.Parallel() // mostly waiting on timers and sessions
	z := servers.StartZooKeeper(t)
	proxy := servers.StartProxy(t, z.Addr())
	admin := zktest.Session(t, z.Addr())
	key := dubboKey("com.example.Live", "", "")
	p1 := zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.2.0.1", 20880, ""))
	zktest.Create(t, admin, p1, nil, false)
	r := startAdapter(t, Config{Servers: []string{proxy.Addr()}, SessionTimeout: time.Second, ResyncInterval: -1,
		ReconnectBackoff: 100 * time.Millisecond, ReconnectBackoffMax: 300 * time.Millisecond})
	r.waitSynced(t)
	r.sink.Wait(t, 10*time.Second, "the provider", wantInstances(r, key, "10.2.0.1:20880"))
	watchedBefore := r.a.Describe()["znodesWatched"].(int)

	proxy.Cut()
	r.sink.Wait(t, 10*time.Second, "the failure reported", func() error {
		if failed := r.sink.Failed(); !failed {
			return errors.New("no Fail")
		}
		return nil
	})
	// Changed while the adapter cannot see: one provider gone, one new.
	zktest.Delete(t, admin, p1)
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.2.0.2", 20880, "")), nil, false)
	time.Sleep(2 * time.Second) // past the 1 s session: the server expires it
	if err := wantInstances(r, key, "10.2.0.1:20880")(); err != nil {
		t.Fatalf("state not held during the partition: %v", err)
	}
	proxy.Restore()
	r.sink.Wait(t, 20*time.Second, "convergence on a new session", wantInstances(r, key, "10.2.0.2:20880"))
	if n := metricValue(t, r.reg, "mcp_bridge_zookeeper_session_expirations_total"); n != 1 {
		t.Errorf("session expirations %v, want 1", n)
	}
	// The watches are back: a later change arrives without a resync.
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.2.0.3", 20880, "")), nil, false)
	r.sink.Wait(t, 10*time.Second, "a change on the new session", wantInstances(r, key, "10.2.0.2:20880", "10.2.0.3:20880"))
	if w := r.a.Describe()["znodesWatched"].(int); w != watchedBefore {
		t.Errorf("%d znodes watched after the new session, %d before", w, watchedBefore)
	}
}

// TestDigestACLChrootAndServerList reads a tree protected by a digest ACL, below a chroot,
// through a connect string whose first server is dead.
func TestDigestACLChrootAndServerList(t *testing.T) {
	t.Parallel() // mostly waiting on timers and sessions
	z := servers.StartZooKeeper(t)
	const user, password = "bridge", "s3cret-pass"
	admin := zktest.Session(t, z.Addr())
	if err := admin.AddAuth("digest", []byte(user+":"+password)); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, user, password)
	zktest.MkdirAll(t, admin, "/tenant-a", zk.WorldACL(zk.PermAll))
	for _, p := range []string{"/tenant-a/dubbo", "/tenant-a/dubbo/com.example.Secure", "/tenant-a/dubbo/com.example.Secure/providers"} {
		if _, err := admin.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Create(zktest.ProviderPath("/tenant-a/dubbo", "com.example.Secure", "dubbo://10.3.0.1:20880/com.example.Secure?interface=com.example.Secure"), nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	dead := deadAddr(t)
	key := dubboKey("com.example.Secure", "", "")

	t.Run("without credentials the protected nodes are reported", func(t *testing.T) {
		r := startAdapter(t, Config{Servers: []string{dead + "," + z.Addr() + "/tenant-a"}, ResyncInterval: -1, ReconnectBackoff: 50 * time.Millisecond})
		r.waitSynced(t)
		if s := r.sink.Services(); len(s) != 0 {
			t.Errorf("services without credentials: %v", s)
		}
		if got := r.rejects()["/dubbo"]; got != "read-failed" {
			t.Errorf("rejects %v, want /dubbo read-failed (NoAuth)", r.rejects())
		}
	})
	t.Run("with digest credentials from a mounted secret file", func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "digest")
		if err := os.WriteFile(secret, []byte(user+":"+password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := startAdapter(t, Config{Servers: []string{dead, z.Addr()}, Chroot: "/tenant-a", Digest: registry.Secret{File: secret},
			ResyncInterval: -1, ReconnectBackoff: 50 * time.Millisecond})
		r.waitSynced(t)
		r.sink.Wait(t, 10*time.Second, "the protected provider", wantInstances(r, key, "10.3.0.1:20880"))
		b, err := json.Marshal(r.a.Describe())
		if err != nil {
			t.Fatalf("status page is not JSON-encodable: %v", err)
		}
		d := string(b)
		if strings.Contains(d, password) {
			t.Errorf("status page shows the password: %s", d)
		}
		if !strings.Contains(d, `"digest":"file:`+secret+`"`) || !strings.Contains(d, `"chroot":"/tenant-a"`) {
			t.Errorf("status page does not say where the digest and chroot come from: %s", d)
		}
	})
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestPeriodicResync checks the safety net: resyncs send the whole state again, re-read every
// node, and do not pile up watches.
func TestPeriodicResync(t *testing.T) {
	t.Parallel() // mostly waiting on timers and sessions
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	for i := 0; i < 5; i++ {
		zktest.Create(t, admin, zktest.ProviderPath("/dubbo", fmt.Sprintf("com.example.R%d", i), fmt.Sprintf("dubbo://10.4.0.%d:20880/com.example.R%d?interface=com.example.R%d", i+1, i, i)), nil, false)
	}
	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: time.Second})
	r.waitSynced(t)
	watched := r.a.Describe()["znodesWatched"].(int)
	r.sink.Wait(t, 10*time.Second, "two resyncs", func() error {
		if n := r.sink.Count("replace"); n < 3 {
			return fmt.Errorf("%d Replaces", n)
		}
		return nil
	})
	if got := len(r.sink.Services()); got != 5 {
		t.Errorf("%d services after resyncs, want 5", got)
	}
	if w := r.a.Describe()["znodesWatched"].(int); w != watched {
		t.Errorf("watches went from %d to %d over resyncs", watched, w)
	}
	if reads := metricValue(t, r.reg, "mcp_bridge_zookeeper_last_full_sync_reads"); reads < 11 {
		t.Errorf("a full resync read %v znodes, want every node (at least 11)", reads)
	}
}

// TestStartWithZooKeeperDown starts the adapter before ZooKeeper: it reports the failure, keeps
// dialing with backoff, and syncs once the server is up.
func TestStartWithZooKeeperDown(t *testing.T) {
	t.Parallel() // mostly waiting on timers and sessions
	z := servers.StartZooKeeper(t)
	admin := zktest.Session(t, z.Addr())
	zktest.Create(t, admin, zktest.ProviderPath("/dubbo", "com.example.Live", liveURL("10.5.0.1", 20880, "")), nil, false)
	admin.Close()
	z.Stop()
	r := startAdapter(t, Config{Servers: []string{z.Addr()}, ResyncInterval: -1, ReconnectBackoff: 100 * time.Millisecond, ReconnectBackoffMax: 400 * time.Millisecond})
	r.sink.Wait(t, 10*time.Second, "the failure reported", func() error {
		if fails := r.sink.Count("fail"); fails == 0 {
			return errors.New("no Fail")
		}
		return nil
	})
	z.Restart()
	r.waitSynced(t)
	r.sink.Wait(t, 10*time.Second, "the provider", wantInstances(r, dubboKey("com.example.Live", "", ""), "10.5.0.1:20880"))
}
