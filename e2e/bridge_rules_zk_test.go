package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// The services of TestBridgeRulesZooKeeper: Dubbo 3 applications in ZooKeeper, so hosts
// "<app>.zookeeper" in namespace zk.
const (
	rtTagged = "rt-tagged"
	rtChainA = "rt-chain-a"
	rtChainB = "rt-chain-b"
	rtChainC = "rt-chain-c"
)

func rtHost(app string) string { return app + ".zookeeper" }

// rtRules are the rules of TestBridgeRulesZooKeeper: Dubbo tag routing with fallback (the
// defaults: tag label dubbo.tag, header dubbo-tag), lanes over the three-service chain (label lane,
// header x-lane, permissive), and resilience on the chain's last hop.
const rtRules = `rules:
  inline:
    - name: rt-tags
      selector: {hosts: ["rt-tagged.zookeeper"]}
      tagRouting: {}
    - name: rt-lanes
      selector: {hosts: ["rt-chain-*.zookeeper"]}
      lanes: {}
    - name: rt-resilience
      selector: {hosts: ["rt-chain-c.zookeeper"]}
      resilience:
        timeout: 3s
        retries: {attempts: 3, perTryTimeout: 1s, retryOn: "unavailable,cancelled"}
        outlierDetection: {consecutive5xxErrors: 7, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 50}
        loadBalancer: {consistentHash: {header: x-user}}
`

// TestBridgeRulesZooKeeper is issue 13's real-traffic test for tag routing and lanes, with real
// gRPC backends registered in a real ZooKeeper as Dubbo 3 Triple providers (application-level
// instances whose dubbo.endpoints name a tri port; dubbo.tag, lane and version in their metadata),
// the bridge's rules engine making the policy, the real Istiod serving it, and Istio's proxyless
// gRPC (grpc-go's xDS client) sending the traffic:
//   - tags: a dubbo-tag: gray request reaches the gray instances; untagged requests and tags no
//     instance carries reach the untagged one; while calls run without pause, the gray instances
//     deregister one by one (gray requests fall back to the untagged instance) and one registers
//     again (they return to it), and not one call fails;
//   - lanes: a three-service chain whose backends forward to the next hop propagating x-lane; an
//     x-lane: feature-42 request takes the lane instance on every hop that has one (first and
//     last) and the baseline on the middle one; other requests stay on the baseline throughout;
//   - what Istiod generates for a sidecar (RDS/CDS): the tag, lane and default routes, subset
//     clusters, timeout, retries, outlier detection and consistent hash;
//   - latency: registry change -> route change seen by the proxyless client, 20 changes;
//   - Istiod logs no dropped resource and no NACK.
func TestBridgeRulesZooKeeper(t *testing.T) {
	t.Parallel()
	tagged := traffic.StartBackends(t, "127.0.46.1", "127.0.46.2", "127.0.46.3") // untagged, gray, gray
	chainA := traffic.StartBackends(t, "127.0.47.1", "127.0.47.2")               // baseline, lane feature-42
	chainB := traffic.StartBackends(t, "127.0.47.11")                            // baseline only
	chainC := traffic.StartBackends(t, "127.0.47.21", "127.0.47.22")             // baseline, lane feature-42
	z, _, br, cp, view := zkStartWith(t, "inline", rtRules)

	registerDubbo3(t, z.Addr(), rtTagged, tagged[0], map[string]string{"version": "1.0.0"})
	gray1 := registerDubbo3(t, z.Addr(), rtTagged, tagged[1], map[string]string{"version": "1.1.0", "dubbo.tag": "gray"})
	gray2 := registerDubbo3(t, z.Addr(), rtTagged, tagged[2], map[string]string{"version": "1.1.0", "dubbo.tag": "gray"})
	for _, r := range []struct {
		app      string
		backends []*traffic.Backend
	}{{rtChainA, chainA}, {rtChainB, chainB}, {rtChainC, chainC}} {
		registerDubbo3(t, z.Addr(), r.app, r.backends[0], map[string]string{"version": "1.0.0"})
		if len(r.backends) > 1 {
			registerDubbo3(t, z.Addr(), r.app, r.backends[1], map[string]string{"version": "1.0.0-feature-42", "lane": "feature-42"})
		}
	}

	tagHost, aHost, bHost, cHost := rtHost(rtTagged), rtHost(rtChainA), rtHost(rtChainB), rtHost(rtChainC)
	cl := func(host, subset string) string { return outboundCluster(host, rulesTriPort, subset) }
	ep := func(bs ...*traffic.Backend) []xdsview.Endpoint {
		var out []xdsview.Endpoint
		for _, b := range bs {
			out = append(out, xdsview.Endpoint{Address: b.Addr})
		}
		return out
	}
	wantEndpoints(t, view, "the rules' subset clusters", map[string][]xdsview.Endpoint{
		cl(tagHost, "baseline"):      ep(tagged[0]),
		cl(tagHost, "tag-gray"):      ep(tagged[1], tagged[2]),
		cl(aHost, "baseline"):        ep(chainA[0]),
		cl(aHost, "lane-feature-42"): ep(chainA[1]),
		cl(bHost, "baseline"):        ep(chainB[0]),
		cl(cHost, "baseline"):        ep(chainC[0]),
		cl(cHost, "lane-feature-42"): ep(chainC[1]),
		cl(tagHost, ""):              ep(tagged...),
	}, 60*time.Second)
	route := func(header, value, cluster string) string {
		var m []string
		if header != "" {
			m = []string{header + "=" + value}
		}
		return fmt.Sprintf("%v->%v", m, map[string]uint32{cluster: 1})
	}
	waitRoutes(t, view, tagHost, []string{route("dubbo-tag", "gray", cl(tagHost, "tag-gray")), route("", "", cl(tagHost, "baseline"))})
	waitRoutes(t, view, aHost, []string{route("x-lane", "feature-42", cl(aHost, "lane-feature-42")), route("", "", cl(aHost, "baseline"))})
	waitRoutes(t, view, bHost, []string{route("", "", cl(bHost, "baseline"))})
	waitRoutes(t, view, cHost, []string{route("x-lane", "feature-42", cl(cHost, "lane-feature-42")), route("", "", cl(cHost, "baseline"))})

	t.Run("resilience in RDS and CDS", func(t *testing.T) {
		checkResilience(t, view.Snapshot(), cHost, []string{cl(cHost, "baseline"), cl(cHost, "lane-feature-42"), cl(cHost, "")})
	})

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr})
	tagTarget := traffic.Target(tagHost, rulesTriPort)
	gray := map[string]string{"dubbo-tag": "gray"}

	t.Run("tags", func(t *testing.T) {
		wantAnswers(t, client, tagTarget, gray, []string{tagged[1].Addr, tagged[2].Addr}, 30*time.Second)
		for _, md := range []map[string]string{nil, {"dubbo-tag": "blue"}} {
			if got := callOnce(t, client, tagTarget, 50, md); len(got) != 1 || got[tagged[0].Addr] != 50 {
				t.Errorf("request with %v answered by %v, want all 50 by the untagged %s", md, got, tagged[0].Addr)
			}
		}
		// Removal: Istiod applies an endpoint change at once (EDS) and a route change after its
		// debounce (RDS), so had the bridge served both at once, the tag route would for a moment
		// still name the subset whose endpoints just went, and grpc-go would fail the RPC with
		// "weighted-target: no targets to pick from". The bridge's staged push serves the route
		// change first and the endpoint's removal a drain grace later: not one call may fail.
		k := startCaller(client, tagTarget, gray)
		start := time.Now()
		gray1.deregister(t)
		k.onlyLast(t, tagged[2].Addr, 20*time.Second)
		gray2.deregister(t) // the last gray instance: gray requests fall back to untagged
		k.onlyLast(t, tagged[0].Addr, 20*time.Second)
		k.onlyLast(t, tagged[0].Addr, 20*time.Second)
		counts, errs := k.finish()
		t.Logf("measure: %d gray calls over %v while the gray instances left: answered by %v, failed %v",
			sum(counts), time.Since(start).Round(time.Millisecond), counts, errs)
		if len(errs) > 0 {
			t.Errorf("calls failed while the tagged instances left (the staged push should have served the route change first): %v", errs)
		}
		if n := metricSum(string(bridgeAdmin(t, br, "/metrics")), "mcp_bridge_staged_pushes_total", nil); n < 1 {
			t.Errorf("mcp_bridge_staged_pushes_total %v after the last tagged instance left, want at least 1", n)
		}
		k = startCaller(client, tagTarget, gray)
		start = time.Now()
		gray2.register(t) // one returns: its route and (kept) subset cluster come back
		k.onlyLast(t, tagged[2].Addr, 20*time.Second)
		k.onlyLast(t, tagged[2].Addr, 20*time.Second) // and stays
		counts, errs = k.finish()
		t.Logf("measure: %d gray calls over %v while a gray instance returned: answered by %v, failed %v",
			sum(counts), time.Since(start).Round(time.Millisecond), counts, errs)
		if len(errs) > 0 {
			t.Errorf("calls failed while a tagged instance returned: %v", errs)
		}
		if counts[tagged[0].Addr] == 0 || counts[tagged[2].Addr] == 0 {
			t.Errorf("answers %v: want the fallback (untagged) first, then the returned gray instance", counts)
		}
		gray1.register(t)
		wantAnswers(t, client, tagTarget, gray, []string{tagged[1].Addr, tagged[2].Addr}, 30*time.Second)
	})

	t.Run("lanes", func(t *testing.T) {
		bTarget, cTarget := traffic.Target(bHost, rulesTriPort), traffic.Target(cHost, rulesTriPort)
		for _, a := range chainA {
			a.Forward(client, bTarget, "x-lane")
		}
		chainB[0].Forward(client, cTarget, "x-lane")
		client.Count(t, bTarget, 1) // the client's channels to every hop ready
		client.Count(t, cTarget, 1)
		aTarget := traffic.Target(aHost, rulesTriPort)
		path := func(bs ...*traffic.Backend) string {
			var ids []string
			for _, b := range bs {
				ids = append(ids, b.Addr)
			}
			return strings.Join(ids, " > ")
		}
		lane := path(chainA[1], chainB[0], chainC[1])
		base := path(chainA[0], chainB[0], chainC[0])
		wantAnswers(t, client, aTarget, map[string]string{"x-lane": "feature-42"}, []string{lane}, 30*time.Second)
		for _, c := range []struct {
			headers map[string]string
			want    string
		}{
			{map[string]string{"x-lane": "feature-42"}, lane},
			{nil, base},
			{map[string]string{"x-lane": "feature-7"}, base}, // a lane no instance carries: baseline
		} {
			if got := callOnce(t, client, aTarget, 50, c.headers); len(got) != 1 || got[c.want] != 50 {
				t.Errorf("chain call with %v took %v, want all 50 along %s", c.headers, got, c.want)
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		// Each change moves gray requests: the last gray instance leaving sends them to the
		// untagged one (route removed), its return brings them back (route restored).
		gray1.deregister(t)
		wantAnswers(t, client, tagTarget, gray, []string{tagged[2].Addr}, 30*time.Second)
		const changes = 20
		var lat []time.Duration
		for i := range changes {
			want := tagged[0].Addr
			at := time.Now()
			if i%2 == 0 {
				gray2.deregister(t)
			} else {
				gray2.register(t)
				want = tagged[2].Addr
			}
			d, failed := seenAfter(t, client, tagTarget, gray, want, at, 15*time.Second)
			lat = append(lat, d)
			if failed > 0 {
				t.Errorf("change %d (the last gray instance %s): %d calls failed", i, map[bool]string{true: "leaving", false: "returning"}[i%2 == 0], failed)
			}
		}
		slices.Sort(lat)
		t.Logf("measure: ZooKeeper change -> route change seen by a proxyless client, %d changes: p50 %v, p99 %v, max %v",
			changes, percentile(lat, 50).Round(time.Millisecond), percentile(lat, 99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	})

	if bad := istiodRejections(cp.Istiod.Log()); len(bad) > 0 {
		t.Errorf("Istiod dropped or a client refused a resource:\n%s", strings.Join(bad, "\n"))
	}
}

// seenAfter sends one RPC after another until one is answered by want, and returns how long after
// at that was (the RPCs' own duration is a millisecond or two on loopback) and how many RPCs
// failed meanwhile.
func seenAfter(t *testing.T, c *traffic.Client, target string, md map[string]string, want string, at time.Time, timeout time.Duration) (time.Duration, int) {
	t.Helper()
	failed := 0
	for time.Since(at) < timeout {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := c.Do(ctx, traffic.Call{Target: target, N: 1, Metadata: md, Timeout: 10 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		failed += res.Failed()
		if res.Counts[want] == 1 {
			return time.Since(at), failed
		}
	}
	t.Fatalf("%s with %v: not answered by %s within %v of the change", target, md, want, timeout)
	return 0, failed
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// waitRoutes waits until host's virtual host in route configuration "50051" has exactly the
// routes want (routesOf's form: header matches -> cluster weights).
func waitRoutes(t *testing.T, v *xdsview.View, host string, want []string) {
	t.Helper()
	v.WaitFor(t, fmt.Sprintf("the routes of %s: %v", host, want), 30*time.Second, func(s *xdsview.Snapshot) error {
		if got := routesOf(s, rulesTriPort, host); !slices.Equal(got, want) {
			return fmt.Errorf("routes of %s: %v", host, got)
		}
		return nil
	})
}
