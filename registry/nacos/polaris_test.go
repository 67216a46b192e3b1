package nacos

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/registry"

	"github.com/mcp-bridge/mcp-bridge/e2e/testkit"
	"github.com/mcp-bridge/mcp-bridge/internal/golden"
)

// The estate registered in the tests against the real Nacos-protocol server, as the applications
// themselves register (nacos-sdk-go, the same requests Spring Cloud Alibaba and Dubbo send):
//
//	public/DEFAULT_GROUP  user-service (Spring Cloud, 2 instances, one https, cluster HZ)
//	                      providers:org.apache.dubbo.samples.api.GreetingsService:1.0.0: (Dubbo 2, 2)
//	                      consumers:org.apache.dubbo.samples.api.GreetingsService:1.0.0: (1)
//	                      shop-order (Dubbo 3 application, 2, dubbo + tri)
//	public/SHOP_GROUP     cart-service (Spring Cloud, 1)
//	dev/DEFAULT_GROUP     user-service (Spring Cloud, 1 ephemeral + 1 persistent)
//	dev/SHOP_GROUP        providers:com.example.CartService:2.0.0:shop (Dubbo 2, 1)
//
// and the mapping config org.apache.shop.OrderService -> shop-order (group "mapping").
const (
	greetings     = "org.apache.dubbo.samples.api.GreetingsService"
	greetingsProv = "providers:" + greetings + ":1.0.0:"
	greetingsCons = "consumers:" + greetings + ":1.0.0:"
	cartProv      = "providers:com.example.CartService:2.0.0:shop"
	orderService  = "org.apache.shop.OrderService"
	shopGroup     = "SHOP_GROUP"
)

func springMetadata(extra map[string]string) map[string]string {
	md := map[string]string{"preserved.register.source": "SPRING_CLOUD"}
	for k, v := range extra {
		md[k] = v
	}
	return md
}

// dubbo2Metadata is what Dubbo 2.7's NacosRegistry registers: the provider URL's parameters plus
// category, protocol and path.
func dubbo2Metadata(iface, version, group, app, side string) map[string]string {
	md := map[string]string{
		"anyhost": "true", "application": app, "deprecated": "false", "dubbo": "2.0.2", "dynamic": "true",
		"generic": "false", "interface": iface, "methods": "sayHello,sayHi", "pid": "4242", "release": "2.7.23",
		"side": side, "timestamp": "1700000000000", "path": iface,
	}
	if version != "" {
		md["version"] = version
	}
	if group != "" {
		md["group"] = group
	}
	if side == "provider" {
		md["category"], md["protocol"] = "providers", "dubbo"
	} else {
		md["category"], md["protocol"], md["check"] = "consumers", "consumer", "false"
	}
	return md
}

func dubbo3Metadata(revision string) map[string]string {
	return map[string]string{
		"dubbo.endpoints":                   `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`,
		"dubbo.metadata.revision":           revision,
		"dubbo.metadata.storage-type":       "local",
		"dubbo.metadata-service.url-params": `{"connections":"1","version":"1.0.0","dubbo":"2.0.2","release":"3.2.10","side":"provider","port":"20880","protocol":"dubbo"}`,
		"timestamp":                         "1700000000000",
	}
}

// registerEstate registers the estate above; each instance is its own application process.
func registerEstate(t *testing.T, addr string) {
	t.Helper()
	reg := func(ns string, p vo.RegisterInstanceParam) {
		p.Enable, p.Healthy, p.Ephemeral = true, true, true
		nacostest.Register(t, nacostest.NewApp(t, addr, ns), p)
	}
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: "user-service", Ip: "10.0.0.1", Port: 8080, ClusterName: "HZ", Weight: 1, Metadata: springMetadata(map[string]string{"version": "v1"})})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: "user-service", Ip: "10.0.0.2", Port: 8443, ClusterName: "HZ", Weight: 2, Metadata: springMetadata(map[string]string{"version": "v2", "secure": "true"})})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: greetingsProv, Ip: "10.0.1.1", Port: 20880, Metadata: dubbo2Metadata(greetings, "1.0.0", "", "greetings-provider", "provider")})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: greetingsProv, Ip: "10.0.1.2", Port: 20880, Metadata: dubbo2Metadata(greetings, "1.0.0", "", "greetings-provider", "provider")})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: greetingsCons, Ip: "10.0.9.1", Port: 0, Metadata: dubbo2Metadata(greetings, "1.0.0", "", "greetings-consumer", "consumer")})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: "shop-order", Ip: "10.0.2.1", Port: 20880, Metadata: dubbo3Metadata("r1")})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: "shop-order", Ip: "10.0.2.2", Port: 20880, Metadata: dubbo3Metadata("r1")})
	reg(PublicNamespace, vo.RegisterInstanceParam{ServiceName: "cart-service", GroupName: shopGroup, Ip: "10.0.3.1", Port: 8080, Metadata: springMetadata(nil)})
	reg("dev", vo.RegisterInstanceParam{ServiceName: "user-service", Ip: "10.1.0.1", Port: 8080, Metadata: springMetadata(nil)})
	// A persistent instance (registered over HTTP, health checked by the server, not the client).
	persistent := vo.RegisterInstanceParam{ServiceName: "user-service", Ip: "10.1.0.2", Port: 8080, Weight: 2, Enable: true, Healthy: true, Ephemeral: false, Metadata: springMetadata(nil)}
	nacostest.Register(t, nacostest.NewApp(t, addr, "dev"), persistent)
	reg("dev", vo.RegisterInstanceParam{ServiceName: cartProv, GroupName: shopGroup, Ip: "10.1.1.1", Port: 20881, Metadata: dubbo2Metadata("com.example.CartService", "2.0.0", "shop", "cart-provider", "provider")})
	if ok, err := nacostest.NewConfigApp(t, addr, PublicNamespace).PublishConfig(vo.ConfigParam{DataId: orderService, Group: "mapping", Content: "shop-order"}); err != nil || !ok {
		t.Fatalf("publishing the Dubbo mapping: ok=%v err=%v", ok, err)
	}
}

// estateComplete is true once every registered instance is visible (Polaris shows registrations
// about a second late).
func estateComplete(r *testkit.RecordSink) error {
	want := map[registry.Key]int{
		{Kind: registry.KindApplication, Namespace: PublicNamespace, Group: DefaultGroup, Name: "user-service"}:                 2,
		{Kind: registry.KindDubboInterface, Namespace: PublicNamespace, Name: greetings, Version: "1.0.0"}:                      2,
		{Kind: registry.KindDubboApplication, Namespace: PublicNamespace, Group: DefaultGroup, Name: "shop-order"}:              2,
		{Kind: registry.KindApplication, Namespace: PublicNamespace, Group: shopGroup, Name: "cart-service"}:                    1,
		{Kind: registry.KindApplication, Namespace: "dev", Group: DefaultGroup, Name: "user-service"}:                           2,
		{Kind: registry.KindDubboInterface, Namespace: "dev", Group: "shop", Name: "com.example.CartService", Version: "2.0.0"}: 1,
	}
	for k, n := range want {
		s := r.Get(k)
		if s == nil || len(s.Instances) != n {
			return fmt.Errorf("%s: want %d instances, have %v", k, n, s)
		}
	}
	if s := r.Get(registry.Key{Kind: registry.KindDubboApplication, Namespace: PublicNamespace, Group: DefaultGroup, Name: "shop-order"}); len(s.Aliases) == 0 {
		return fmt.Errorf("shop-order has no aliases yet")
	}
	return nil
}

func TestPolarisEstate(t *testing.T) {
	t.Parallel()
	p := servers.StartPolaris(t)
	registerEstate(t, p.NacosAddr())

	cfg := testConfig(t, p.NacosAddr())
	cfg.Namespaces = []string{PublicNamespace, "dev"}
	cfg.Groups = []string{DefaultGroup, shopGroup}
	cfg.Dubbo.Mapping = true
	cfg.Dubbo.MappingInterfaces = []string{orderService}
	r := startAdapter(t, cfg, nil)
	r.Sink.WaitSynced(t, 20*time.Second)
	testkit.WaitFor(t, 20*time.Second, "every registered instance", func() error { return estateComplete(r.Sink) })
	golden.Compare(t, filepath.Join("testdata", "estate.json"), testkit.MustJSON(t, r.Sink.Services()))
	if rejects, _ := r.Sink.Rejects(); len(rejects) != 0 {
		t.Errorf("rejected entries: %v", rejects)
	}
	// TestEstateResources turns this model into Istio resources through the real pipeline.

	// The SDK wrote its cache under cacheDir; a new adapter on the same directory, with the server
	// gone, serves nothing from it: only a live server counts.
	r.Stop()
	cached, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "cache", "naming", "*", "*"))
	if len(cached) == 0 {
		t.Fatalf("the SDK wrote no cache files under %s", cfg.CacheDir)
	}
	p.Kill()
	again := startAdapter(t, cfg, nil)
	testkit.WaitFor(t, 10*time.Second, "Fail", func() error {
		if again.Sink.Count("fail") == 0 {
			return fmt.Errorf("no Fail")
		}
		return nil
	})
	time.Sleep(3 * cfg.PollInterval)
	if n := again.Sink.Count("replace") + again.Sink.Count("upsert"); n != 0 || len(again.Sink.Services()) != 0 {
		t.Errorf("with the server down and %d cache files, the adapter sent %d Replace/Upsert calls", len(cached), n)
	}
	again.Stop()
	p.Restart()

	// Selection: each adapter sees only its namespaces and groups, and the Dubbo consumers
	// service never becomes a service of its own.
	for _, tc := range []struct {
		name       string
		namespaces []string
		groups     []string
		include    []string
		exclude    []string
		want       []string
	}{
		{"dev only", []string{"dev"}, []string{All}, nil, nil, []string{
			"application:dev/DEFAULT_GROUP/user-service",
			"dubbo-interface:dev/shop/com.example.CartService:2.0.0",
		}},
		{"shop group only", []string{PublicNamespace, "dev"}, []string{shopGroup}, nil, nil, []string{
			"application:public/SHOP_GROUP/cart-service",
			"dubbo-interface:dev/shop/com.example.CartService:2.0.0",
		}},
		{"default group of public", nil, nil, nil, nil, []string{
			"application:public/DEFAULT_GROUP/user-service",
			"dubbo-application:public/DEFAULT_GROUP/shop-order",
			"dubbo-interface:public/" + greetings + ":1.0.0",
		}},
		{"include and exclude", []string{PublicNamespace}, []string{All}, []string{".*-service", "providers:.*"}, []string{"cart-.*"}, []string{
			"application:public/DEFAULT_GROUP/user-service",
			"dubbo-interface:public/" + greetings + ":1.0.0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, p.NacosAddr())
			cfg.Namespaces, cfg.Groups, cfg.Include, cfg.Exclude = tc.namespaces, tc.groups, tc.include, tc.exclude
			r := startAdapter(t, cfg, nil)
			r.Sink.WaitSynced(t, 20*time.Second)
			var got []string
			for _, s := range r.Sink.Services() {
				got = append(got, s.Key().String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("services:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
