package nacos

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// TestPolarisDubboMapping: Dubbo 3 applications become one service per mapped interface
// (dubbo3Hosts: interface) and follow changes of the mapping config; a consumers: service feeds
// the consumers of what it consumes.
func TestPolarisDubboMapping(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	addr := p.NacosAddr()
	for i, ip := range []string{"10.0.2.1", "10.0.2.2"} {
		nacostest.Register(t, nacostest.NewApp(t, addr, PublicNamespace), vo.RegisterInstanceParam{ServiceName: "shop-order", Ip: ip, Port: 20880, Weight: float64(i + 1), Enable: true, Healthy: true, Ephemeral: true, Metadata: dubbo3Metadata("r1")})
	}
	// A Dubbo 2 consumer of the interface, registered interface-level.
	consumer := dubbo2Metadata(orderService, "", "", "shop-web", "consumer")
	nacostest.Register(t, nacostest.NewApp(t, addr, PublicNamespace), vo.RegisterInstanceParam{ServiceName: "consumers:" + orderService + "::", Ip: "10.0.9.9", Port: 0, Enable: true, Healthy: true, Ephemeral: true, Metadata: consumer})
	cfgApp := nacostest.NewConfigApp(t, addr, PublicNamespace)
	publish := func(iface, apps string) {
		t.Helper()
		if ok, err := cfgApp.PublishConfig(vo.ConfigParam{DataId: iface, Group: "mapping", Content: apps}); err != nil || !ok {
			t.Fatalf("publishing mapping %s: ok=%v err=%v", iface, ok, err)
		}
	}
	publish(orderService, "shop-order")

	cfg := testConfig(t, addr)
	cfg.Dubbo = Dubbo{Mapping: true, MappingInterfaces: []string{"org.apache.shop.StockService"}, Dubbo3Hosts: HostsInterface}
	r := startAdapter(t, cfg, nil)
	r.Sink.WaitSynced(t, 20*time.Second)
	ifaceKey := func(i string) registry.Key {
		return registry.Key{Kind: registry.KindDubboInterface, Namespace: PublicNamespace, Name: i}
	}
	const wait = 15 * time.Second
	r.Sink.WaitService(t, wait, ifaceKey(orderService), func(s *registry.Service) error {
		if err := dubboInstancesAre("10.0.2.1:20880/100", "10.0.2.2:20880/100")(s); err != nil {
			return err
		}
		if !slices.Equal(s.Consumers, []string{"shop-web"}) {
			return fmt.Errorf("consumers %v", s.Consumers)
		}
		return nil
	})
	if s := r.Sink.Get(registry.Key{Kind: registry.KindDubboApplication, Namespace: PublicNamespace, Group: DefaultGroup, Name: "shop-order"}); s != nil {
		t.Errorf("interface mode also sent the application service")
	}

	// A mapping published later, for a configured interface, adds its service.
	publish("org.apache.shop.StockService", "shop-order")
	r.Sink.WaitService(t, wait, ifaceKey("org.apache.shop.StockService"), dubboInstancesAre("10.0.2.1:20880/100", "10.0.2.2:20880/100"))
	// The mapping no longer names the application: its service goes.
	publish(orderService, "other-app")
	testkit.WaitFor(t, wait, "the OrderService service to be deleted", func() error {
		if r.Sink.Get(ifaceKey(orderService)) != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// dubboInstancesAre checks a Dubbo service's instances as "id/weight".
func dubboInstancesAre(want ...string) func(*registry.Service) error {
	return func(s *registry.Service) error {
		var got []string
		for _, in := range s.Instances {
			got = append(got, fmt.Sprintf("%s/%d", in.ID, in.Weight))
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("instances %q, want %q", got, want)
		}
		return nil
	}
}
