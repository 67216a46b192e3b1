package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/traffic"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// TestBridgeRulesLocality is issue 13's locality test with real traffic: Dubbo 3 Triple providers
// registered in the Nacos-protocol server (Polaris) in two Nacos clusters, which the bridge maps
// to the localities r1/z1 and r1/z2; a locality rule (the engine adds the outlier detection
// Istio's failover needs); a proxyless gRPC client whose bootstrap puts it in r1/z1.
//   - Istiod's EDS for a sidecar in r1/z1 puts the z1 endpoints at priority 0 and the z2 one at
//     priority 1, and its cluster carries the added outlier detection;
//   - all traffic stays in z1 (grpc-go's priority balancer uses priority 0 while it is ready);
//   - the z1 instances deregister while calls run: traffic moves to z2, and no call fails.
//
// What this does not cover: failover of instances that crash without deregistering (their
// endpoints stay in EDS; grpc-go moves to priority 1 only once every priority-0 connection has
// failed, and its outlier detection ejects by failure rate).
func TestBridgeRulesLocality(t *testing.T) {
	t.Parallel()
	bs := traffic.StartBackends(t, "127.0.48.1", "127.0.48.2", "127.0.48.3") // z1, z1, z2
	bin := suite.Build(t, "./cmd/mcp-bridge")
	suite.Cluster(t)
	p := servers.StartPolaris(t)
	cfg := strings.Replace(nacosBridgeConfig(p.NacosAddr(), t.TempDir()), "      timeout: 1s\n",
		"      timeout: 1s\n      locality: {clusters: {Z1: r1/z1, Z2: r1/z2}}\n", 1) + `rules:
  inline:
    - name: rt-locality
      selector: {hosts: ["rt-local.*"]}
      locality:
        failover: [{from: r1, to: r2}]
`
	b := servers.StartBridge(t, servers.BridgeOptions{Binary: bin, Config: cfg})
	cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
	view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{Locality: "r1/z1"})

	apps := make([]naming_client.INamingClient, len(bs))
	params := make([]vo.RegisterInstanceParam, len(bs))
	for i, be := range bs {
		zone := map[bool]string{true: "Z1", false: "Z2"}[i < 2]
		apps[i] = nacostest.NewApp(t, p.NacosAddr(), "public")
		params[i] = vo.RegisterInstanceParam{
			ServiceName: "rt-local", GroupName: "DEFAULT_GROUP", ClusterName: zone,
			Ip: be.IP, Port: uint64(be.Port), Weight: 100, Enable: true, Healthy: true, Ephemeral: true,
			Metadata: map[string]string{
				"dubbo.endpoints":             fmt.Sprintf(`[{"port":%d,"protocol":"tri"}]`, be.Port),
				"dubbo.metadata.revision":     "7c1e5a90b3d2f846",
				"dubbo.metadata.storage-type": "local",
				"version":                     "1.0.0",
			},
		}
		nacosRegister(t, apps[i], params[i])
	}

	// The host follows the nacos host template; find it from the cluster Istio made.
	var host string
	view.WaitFor(t, "the rt-local cluster", 60*time.Second, func(s *xdsview.Snapshot) error {
		for _, c := range xdsview.ClusterNames(s, fmt.Sprintf("outbound|%d||rt-local.", rulesTriPort)) {
			host = c[strings.LastIndexByte(c, '|')+1:]
			return nil
		}
		return fmt.Errorf("no cluster yet")
	})
	cluster := outboundCluster(host, rulesTriPort, "")
	z1, z2 := "r1/z1/", "r1/z2/"
	view.WaitFor(t, "EDS priorities relative to r1/z1", 30*time.Second, func(s *xdsview.Snapshot) error {
		want := map[string]string{bs[0].Addr: z1 + "0", bs[1].Addr: z1 + "0", bs[2].Addr: z2 + "1"}
		got := map[string]string{}
		for _, e := range s.Endpoints[cluster] {
			got[e.Address] = fmt.Sprintf("%s%d", e.Locality, e.Priority)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("endpoints (locality+priority) %v, want %v", got, want)
		}
		return nil
	})
	od := view.Snapshot().Clusters[cluster].GetOutlierDetection()
	if od.GetConsecutive_5Xx().GetValue() != 5 || od.GetInterval().AsDuration() != 10*time.Second || od.GetBaseEjectionTime().AsDuration() != 30*time.Second {
		t.Errorf("cluster %s: outlier detection %v, want the engine's default for failover (5 consecutive 5xx, 10s, 30s)", cluster, od)
	}

	client := traffic.StartClient(t, traffic.ClientOptions{Binary: suite.Build(t, traffic.ClientPackage), XDSAddr: cp.Istiod.GRPCAddr, Locality: "r1/z1"})
	target := traffic.Target(host, rulesTriPort)
	wantAnswers(t, client, target, nil, []string{bs[0].Addr, bs[1].Addr}, 30*time.Second)
	if got := callOnce(t, client, target, 200, nil); got[bs[2].Addr] > 0 || len(got) != 2 {
		t.Errorf("200 calls from r1/z1 answered by %v, want only the two z1 instances", got)
	}

	k := startCaller(client, target, nil)
	start := time.Now()
	for i := range 2 {
		if ok, err := apps[i].DeregisterInstance(vo.DeregisterInstanceParam{Ip: params[i].Ip, Port: params[i].Port,
			ServiceName: params[i].ServiceName, GroupName: params[i].GroupName, Cluster: params[i].ClusterName, Ephemeral: true}); err != nil || !ok {
			t.Fatalf("deregistering %s: ok=%v err=%v", bs[i].Addr, ok, err)
		}
	}
	k.onlyLast(t, bs[2].Addr, 30*time.Second)
	moved := time.Since(start)
	k.onlyLast(t, bs[2].Addr, 30*time.Second)
	counts, errs := k.finish()
	t.Logf("measure: z1 deregistered -> traffic in z2 after %v; calls meanwhile answered by %v, failed %v", moved.Round(time.Millisecond), counts, errs)
	if len(errs) > 0 {
		t.Errorf("calls failed while traffic moved to z2: %v", errs)
	}
	if bad := istiodRejections(cp.Istiod.Log()); len(bad) > 0 {
		t.Errorf("Istiod dropped or a client refused a resource:\n%s", strings.Join(bad, "\n"))
	}
}
