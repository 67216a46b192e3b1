package nacos

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
)

// forgedPush is a Nacos 1.x UDP push as nacos-sdk-go's push receiver reads it: the service
// "orders" with one instance at 6.6.6.6 and a lastRefTime an hour ahead, so a client that
// applied it would also drop the real updates that follow as out of date.
func forgedPush(t *testing.T) []byte {
	t.Helper()
	svc := map[string]any{
		"name": "orders", "groupName": DefaultGroup, "clusters": "", "valid": true,
		"lastRefTime": time.Now().Add(time.Hour).UnixMilli(),
		"hosts": []map[string]any{{
			"instanceId": "6.6.6.6#8080#DEFAULT#DEFAULT_GROUP@@orders", "ip": "6.6.6.6", "port": 8080,
			"weight": 1, "healthy": true, "enabled": true, "ephemeral": true,
			"clusterName": defaultCluster, "serviceName": DefaultGroup + "@@orders", "metadata": map[string]string{},
		}},
	}
	data, err := json.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	push, err := json.Marshal(map[string]any{"type": "service", "data": string(data), "lastRefTime": time.Now().Add(time.Hour).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return push
}

// TestForgedUDPPushIsIgnored: nothing the adapter's SDK client listens on lets anyone on the
// network change what the bridge serves. It sends a forged push to every UDP socket of this
// process (the adapter's, and the SDK receivers of the application clients the test registers
// through) and checks that the adapter neither shows the forged address nor stops taking real
// changes. Not parallel: the datagrams go to every socket of the process.
func TestForgedUDPPushIsIgnored(t *testing.T) {
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()
	app := nacostest.NewApp(t, addr, PublicNamespace)
	nacostest.Register(t, app, vo.RegisterInstanceParam{ServiceName: "orders", Ip: "127.0.0.5", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})

	before, err := servers.Sockets(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, addr)
	cfg.ResyncInterval = time.Hour // only pushes may bring the later change
	r := startAdapter(t, cfg, nil)
	r.Sink.WaitSynced(t, 20*time.Second)
	const wait = 15 * time.Second
	r.Sink.WaitService(t, wait, nacostest.AppKey("orders"), nacostest.InstancesAre("127.0.0.5:8080/100/true/true"))

	after, err := servers.Sockets(0)
	if err != nil {
		t.Fatal(err)
	}
	// What the adapter opened: every listening socket that was not there before.
	old := map[string]bool{}
	for _, s := range before {
		old[s.String()] = true
	}
	for _, s := range after {
		if s.Listening && !old[s.String()] {
			t.Errorf("the Nacos adapter opened a listener: %s", s)
		}
	}

	push := forgedPush(t)
	var sent int
	for _, s := range after {
		if !s.Listening || (s.Proto != "udp" && s.Proto != "udp6") {
			continue
		}
		to := "127.0.0.1"
		if s.Proto == "udp6" && s.Local.To4() == nil {
			to = "::1"
		}
		c, err := net.Dial("udp", net.JoinHostPort(to, strconv.Itoa(s.Port)))
		if err != nil {
			t.Fatalf("dialing %s: %v", s, err)
		}
		if _, err := c.Write(push); err == nil {
			sent++
		}
		c.Close()
	}
	t.Logf("sent the forged push to %d UDP sockets of %d sockets", sent, len(after))

	// A real change after the forged push must still arrive, and the forged address never.
	app2 := nacostest.NewApp(t, addr, PublicNamespace)
	nacostest.Register(t, app2, vo.RegisterInstanceParam{ServiceName: "orders", Ip: "127.0.0.6", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})
	r.Sink.WaitService(t, wait, nacostest.AppKey("orders"), nacostest.InstancesAre("127.0.0.5:8080/100/true/true", "127.0.0.6:8080/100/true/true"))
	for _, e := range r.Sink.EventsSince(0) {
		for _, s := range e.Services {
			for _, in := range s.Instances {
				if in.Address == "6.6.6.6" {
					t.Fatalf("the forged instance reached the sink: %s %s", e.Op, s.Key())
				}
			}
		}
	}
}

// TestSubscribeOverridesFutureLastRefTime: a cached entry whose lastRefTime lies in the future
// (what a server node with its clock ahead pushes) must not hide the server's answer to the
// next Subscribe — the periodic resync and the Polaris re-reads rely on it. The SDK's own
// client answered such a Subscribe from its cache and never called back.
func TestSubscribeOverridesFutureLastRefTime(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()
	app := nacostest.NewApp(t, addr, PublicNamespace)
	nacostest.Register(t, app, vo.RegisterInstanceParam{ServiceName: "orders", Ip: "127.0.0.5", Port: 8080, Enable: true, Healthy: true, Ephemeral: true})

	cfg := testConfig(t, addr).WithDefaults()
	f := &sdkFactory{cfg: cfg, cacheDir: cfg.CacheDir}
	nc, err := f.naming(PublicNamespace)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseClient()
	g := nc.(*grpcNaming)
	got := make(chan []model.Instance, 16)
	param := &vo.SubscribeParam{ServiceName: "orders", GroupName: DefaultGroup, SubscribeCallback: func(in []model.Instance, err error) {
		if err == nil {
			got <- append([]model.Instance(nil), in...)
		}
	}}
	waitIPs := func(want string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		var last string
		for {
			select {
			case in := <-got:
				var ips []string
				for _, i := range in {
					ips = append(ips, i.Ip)
				}
				if last = strings.Join(ips, ","); last == want {
					return
				}
			case <-deadline:
				t.Fatalf("callback never reported %q; last %q", want, last)
			}
		}
	}
	// Polaris lists a new registration about a second late: subscribe until it answers.
	testkit.WaitFor(t, 15*time.Second, "a first answer", func() error { return g.Subscribe(param) })
	waitIPs("127.0.0.5")

	g.holder.ProcessService(&model.Service{
		Name: "orders", GroupName: DefaultGroup, LastRefTime: uint64(time.Now().Add(time.Hour).UnixMilli()),
		Hosts: []model.Instance{{Ip: "6.6.6.6", Port: 8080, Weight: 1, Healthy: true, Enable: true}},
	})
	waitIPs("6.6.6.6")
	if err := g.Subscribe(param); err != nil {
		t.Fatal(err)
	}
	waitIPs("127.0.0.5")
}
