package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// rulesTriPort is the service port of every Dubbo 3 Triple service (translate's default for
// tri, whatever port the instances listen on): proxyless clients dial host:50051.
const rulesTriPort = 50051

// dubbo3Provider is one Dubbo 3 application instance registered in ZooKeeper as Dubbo 3 does
// (application-level discovery): a Curator ServiceInstance under /services/<app>, ephemeral in
// the process's own session, whose dubbo.endpoints name one tri port, the backend's.
type dubbo3Provider struct {
	conn *zk.Conn
	path string
	data []byte
}

// registerDubbo3 registers backend be as an instance of app with the given metadata (Dubbo's
// URL parameters: dubbo.tag, lane, version, ...), in a session of its own.
func registerDubbo3(t *testing.T, zkAddr, app string, be *traffic.Backend, md map[string]string) *dubbo3Provider {
	t.Helper()
	id := be.Addr
	meta := map[string]string{
		"dubbo.endpoints":             fmt.Sprintf(`[{"port":%d,"protocol":"tri"}]`, be.Port),
		"dubbo.metadata.revision":     "5b2c9e0d41a7f3c8",
		"dubbo.metadata.storage-type": "local",
		"timestamp":                   fmt.Sprint(time.Now().UnixMilli()),
	}
	maps.Copy(meta, md)
	data, err := json.Marshal(map[string]any{
		"name": app, "id": id, "address": be.IP, "port": be.Port, "sslPort": nil,
		"payload": map[string]any{
			"@class": "org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
			"id":     id, "name": app, "metadata": meta,
		},
		"registrationTimeUTC": time.Now().UnixMilli(), "serviceType": "DYNAMIC", "uriSpec": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &dubbo3Provider{conn: zktest.Session(t, zkAddr), path: "/services/" + app + "/" + id, data: data}
	p.register(t)
	return p
}

func (p *dubbo3Provider) register(t *testing.T) {
	t.Helper()
	zktest.Create(t, p.conn, p.path, p.data, true)
}
func (p *dubbo3Provider) deregister(t *testing.T) { t.Helper(); zktest.Delete(t, p.conn, p.path) }

// callOnce sends n RPCs with metadata md to target and returns who answered (failures fail the
// test: a caller of callOnce expects none).
func callOnce(t *testing.T, c *traffic.Client, target string, n int, md map[string]string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Do(ctx, traffic.Call{Target: target, N: n, Metadata: md, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() > 0 {
		t.Fatalf("%s with %v: %d of %d RPCs failed: %v (answered: %v)", target, md, res.Failed(), n, res.Errors, res.Counts)
	}
	return res.Counts
}

// wantAnswers waits until n RPCs with md to target are all answered, and only by the keys of want
// (each at least once when n allows), for when routes are still converging.
func wantAnswers(t *testing.T, c *traffic.Client, target string, md map[string]string, want []string, timeout time.Duration) {
	t.Helper()
	wantCallAnswers(t, c, traffic.Call{Target: target, Metadata: md}, want, timeout)
}

// wantCallAnswers is wantAnswers for any call (a method path, say); call.N, Timeout and
// WaitForReady are set here.
func wantCallAnswers(t *testing.T, c *traffic.Client, call traffic.Call, want []string, timeout time.Duration) {
	t.Helper()
	call.N, call.Timeout, call.WaitForReady = 10*len(want), 10*time.Second, true
	servers.WaitFor(t, timeout, fmt.Sprintf("%s %s with %v answered by %v", call.Target, call.Method, call.Metadata, want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := c.Do(ctx, call)
		if err != nil {
			return err
		}
		if res.Failed() > 0 {
			return fmt.Errorf("errors %v, answers %v", res.Errors, res.Counts)
		}
		if got := slices.Sorted(maps.Keys(res.Counts)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("answered by %v", res.Counts)
		}
		return nil
	})
}

// caller keeps sending batches of RPCs until stopped, counting answers and failures: the
// "no failed call while instances come and go" check.
type caller struct {
	mu     sync.Mutex
	counts map[string]int
	errors map[string]int
	last   map[string]int // the latest batch's answers
	stop   chan struct{}
	done   chan struct{}
}

func startCaller(c *traffic.Client, target string, md map[string]string) *caller {
	k := &caller{counts: map[string]int{}, errors: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for {
			select {
			case <-k.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			res, err := c.Do(ctx, traffic.Call{Target: target, N: 10, Metadata: md, Timeout: 5 * time.Second})
			cancel()
			k.mu.Lock()
			if err != nil {
				k.errors["batch: "+err.Error()]++
			} else {
				for id, n := range res.Counts {
					k.counts[id] += n
				}
				for e, n := range res.Errors {
					k.errors[e] += n
				}
				k.last = res.Counts
			}
			k.mu.Unlock()
		}
	}()
	return k
}

// onlyLast waits until a whole batch sent after the call was answered by id alone.
func (k *caller) onlyLast(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	k.mu.Lock()
	k.last = nil
	k.mu.Unlock()
	servers.WaitFor(t, timeout, "a batch answered by "+id+" alone", func() error {
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(k.last) != 1 || k.last[id] == 0 {
			return fmt.Errorf("latest batch answered by %v", k.last)
		}
		return nil
	})
}

// finish stops the caller and returns its totals.
func (k *caller) finish() (counts, errors map[string]int) {
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.counts, k.errors
}

// istiodRejections are Istiod log lines saying a resource was dropped or refused: the MCP
// client's drop warnings, and a proxy's (here grpc-go's) NACK of what Istiod generated.
func istiodRejections(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		bad := strings.Contains(line, "ACK ERROR") || strings.Contains(line, "NACK")
		for _, d := range istiodDropLines {
			bad = bad || strings.Contains(line, d)
		}
		if bad {
			out = append(out, line)
		}
	}
	return out
}

// routesOf returns the routes of host's virtual host in route configuration "<port>".
func routesOf(s *xdsview.Snapshot, port int, host string) []string {
	vh := s.VirtualHost(fmt.Sprint(port), host)
	var out []string
	for _, r := range vh.GetRoutes() {
		var m []string
		for _, h := range r.GetMatch().GetHeaders() {
			m = append(m, h.GetName()+"="+h.GetStringMatch().GetExact())
		}
		out = append(out, fmt.Sprintf("%v->%v", m, xdsview.ClusterWeights(r)))
	}
	return out
}

// checkResilience checks what Istiod generated for a sidecar from rtRules' resilience section:
// on every route of host (port 50051) a 3 s timeout, 3 retries of 1 s each on unavailable and
// cancelled, and a hash on header x-user; on each of clusters outlier detection (7 consecutive
// 5xx, every 5 s, ejected 15 s, at most 50%) and a consistent-hash load balancer.
func checkResilience(t *testing.T, s *xdsview.Snapshot, host string, clusters []string) {
	t.Helper()
	vh := s.VirtualHost(fmt.Sprint(rulesTriPort), host)
	if len(vh.GetRoutes()) == 0 {
		t.Fatalf("no routes for %s", host)
	}
	for i, r := range vh.GetRoutes() {
		ra := r.GetRoute()
		if d := ra.GetTimeout().AsDuration(); d != 3*time.Second {
			t.Errorf("route %d of %s: timeout %v, want 3s", i, host, d)
		}
		rp := ra.GetRetryPolicy()
		if rp.GetNumRetries().GetValue() != 3 || rp.GetPerTryTimeout().AsDuration() != time.Second ||
			!strings.Contains(rp.GetRetryOn(), "unavailable") || !strings.Contains(rp.GetRetryOn(), "cancelled") {
			t.Errorf("route %d of %s: retry policy %v, want 3 retries of 1s on unavailable,cancelled", i, host, rp)
		}
		hp := ra.GetHashPolicy()
		if len(hp) != 1 || hp[0].GetHeader().GetHeaderName() != "x-user" {
			t.Errorf("route %d of %s: hash policy %v, want header x-user", i, host, hp)
		}
	}
	for _, name := range clusters {
		c, ok := s.Clusters[name]
		if !ok {
			t.Errorf("no cluster %s", name)
			continue
		}
		od := c.GetOutlierDetection()
		if od.GetConsecutive_5Xx().GetValue() != 7 || od.GetInterval().AsDuration() != 5*time.Second ||
			od.GetBaseEjectionTime().AsDuration() != 15*time.Second || od.GetMaxEjectionPercent().GetValue() != 50 {
			t.Errorf("cluster %s: outlier detection %v, want 7 consecutive 5xx, 5s, 15s, 50%%", name, od)
		}
		if p := c.GetLbPolicy().String(); p != "RING_HASH" && p != "MAGLEV" {
			t.Errorf("cluster %s: load balancer %s, want a consistent hash (RING_HASH or MAGLEV)", name, p)
		}
	}
}

// allContain reports whether every error text in m contains s.
func allContain(m map[string]int, s string) bool {
	for k := range m {
		if !strings.Contains(k, s) {
			return false
		}
	}
	return true
}
