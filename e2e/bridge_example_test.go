package e2e

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// What registry/file/example.yaml (the embedded default) documents, named by the rules of
// docs/registries.md#hosts and translate's DefaultHostTemplates for a registry of type file:
//   - the registry is called "example" (config.Default), so its resources go to namespace example;
//   - a Dubbo interface is "<interface lower-cased>[-<group>][-<version, '.' -> '-'>]";
//   - applications (Spring Cloud, Dubbo 3 apps) are "<name>.file";
//   - Dubbo service ports are fixed: dubbo 20880, tri 50051 (translate.DefaultServicePorts);
//   - only healthy, enabled instances of weight > 0 are endpoints.
//
// None of it is read back from the bridge: a wrong host, port or endpoint in its output fails here.
const (
	exampleNamespace = "example"
	greetingsHost    = "org.apache.dubbo.samples.api.greetingsservice-1-0-0"
	shopOrderHost    = "shop-order.file"
	orderAliasHost   = "org.apache.dubbo.samples.shop.orderservice" // shop-order's alias, a Dubbo interface
	userServiceHost  = "user-service.file"
	dubboPort        = 20880
	triPort          = 50051
	userServicePort  = 8080
)

// defaultVIPRange is translate.DefaultVIPCIDR, the documented default range of the VIPs the bridge
// gives its services (a TCP service must have one, or Istio tells TCP services apart by port only).
var defaultVIPRange = netip.MustParsePrefix("240.0.0.0/9")

// locality renders a region/zone as the sidecar view shows it (region/zone/subzone).
func locality(region, zone string) string { return region + "/" + zone + "/" }

// exampleEndpoints is, per outbound cluster, the endpoints example.yaml's instances must become.
func exampleEndpoints() map[string][]xdsview.Endpoint {
	ep := func(ip string, port int, weight uint32, zone string) xdsview.Endpoint {
		return xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", ip, port), Weight: weight, Locality: locality("eu-west-1", zone)}
	}
	// shop-order: 127.0.10.13 is unhealthy, so not an endpoint.
	shop := func(port int) []xdsview.Endpoint {
		return []xdsview.Endpoint{ep("127.0.10.11", port, 100, "eu-west-1a"), ep("127.0.10.12", port, 100, "eu-west-1b"), ep("127.0.10.14", port, 100, "eu-west-1a")}
	}
	return map[string][]xdsview.Endpoint{
		// The canary 127.0.10.3 keeps its weight of 10.
		outboundCluster(greetingsHost, dubboPort, ""): {
			ep("127.0.10.1", dubboPort, 100, "eu-west-1a"),
			ep("127.0.10.2", dubboPort, 100, "eu-west-1b"),
			ep("127.0.10.3", dubboPort, 10, "eu-west-1a"),
		},
		outboundCluster(shopOrderHost, dubboPort, ""):  shop(dubboPort),
		outboundCluster(shopOrderHost, triPort, ""):    shop(triPort),
		outboundCluster(orderAliasHost, dubboPort, ""): shop(dubboPort),
		outboundCluster(orderAliasHost, triPort, ""):   shop(triPort),
		// user-service: 127.0.10.23 is disabled, so not an endpoint.
		outboundCluster(userServiceHost, userServicePort, ""): {
			ep("127.0.10.21", userServicePort, 100, "eu-west-1a"),
			ep("127.0.10.22", userServicePort, 100, "eu-west-1b"),
			ep("127.0.10.24", userServicePort, 100, "eu-west-1a"),
			ep("127.0.10.25", userServicePort, 100, "eu-west-1b"),
		},
	}
}

// exampleAddresses is, per host, the instance addresses that must back it in workloadEntry mode.
var exampleAddresses = map[string][]string{
	greetingsHost:   {"127.0.10.1", "127.0.10.2", "127.0.10.3"},
	shopOrderHost:   {"127.0.10.11", "127.0.10.12", "127.0.10.14"},
	orderAliasHost:  {"127.0.10.11", "127.0.10.12", "127.0.10.14"},
	userServiceHost: {"127.0.10.21", "127.0.10.22", "127.0.10.24", "127.0.10.25"},
}

// TestBridgeExampleServices is issue 3 test 1: Istiod with the bridge as its only config source
// (no k8s://, so nothing but the bridge feeds it) becomes ready, and its sidecar view has, for
// every example service, the clusters and endpoints the example file documents, in both
// endpoint modes.
func TestBridgeExampleServices(t *testing.T) {
	for _, mode := range []struct {
		name   string
		config string // "" runs the bridge with no --config at all
	}{
		{"inline (no config: embedded default)", ""},
		{"workloadEntry", "registries:\n  - {name: example, type: file}\ntranslate: {endpointMode: workloadEntry}\n"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			suite.Build(t, bridgePackage) // not part of the start-up measured below
			start := time.Now()
			suite.Cluster(t)
			clusterAt := time.Now()
			b := startBridge(t, mode.config)
			bridgeAt := time.Now()
			cp := suite.ControlPlane(t, servers.IstiodOptions{ConfigSources: []servers.ConfigSource{b.ConfigSource()}})
			istiodAt := time.Now()
			view := xdsview.Connect(t, cp.Istiod.GRPCAddr, xdsview.Options{})
			want := exampleEndpoints()
			wantEndpoints(t, view, "the example services' endpoints", want, 20*time.Second)
			t.Logf("measure: start-up: shared cluster %v (0 when already up), bridge ready %v, istiod ready %v, example endpoints in the sidecar view %v; total %v",
				clusterAt.Sub(start).Round(time.Millisecond), bridgeAt.Sub(clusterAt).Round(time.Millisecond),
				istiodAt.Sub(bridgeAt).Round(time.Millisecond), time.Since(istiodAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

			s := view.Snapshot()
			// Nothing else for the example's hosts: no extra port, subset or host.
			var got []string
			for _, name := range xdsview.ClusterNames(s, "outbound|") {
				// Subset clusters (outbound|port|subset|host) come from the example rules (embedded
				// default only): TestBridgeRulesCanary covers generated subsets.
				if parts := strings.Split(name, "|"); len(parts) == 4 && parts[2] != "" {
					continue
				}
				if slices.ContainsFunc(slices.Collect(maps.Keys(exampleAddresses)), func(h string) bool { return strings.HasSuffix(name, "|"+h) }) {
					got = append(got, name)
				}
			}
			if wantNames := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNames) {
				t.Errorf("clusters of the example hosts: %v, want %v", got, wantNames)
			}
			// Listeners and routes come in their own responses, after clusters and endpoints.
			view.WaitFor(t, "the example services' listeners and routes", 10*time.Second, func(s *xdsview.Snapshot) error {
				return exampleListenersAndRoutes(s, mode.config == "")
			})

			checkExampleConfig(t, cp.Istiod, mode.config != "")
			if rss, err := cp.Istiod.RSS(); err == nil {
				t.Logf("measure: istiod RSS with the example services (%s) %d MiB", mode.name, rss>>20)
			}
		})
	}
}

// exampleListenersAndRoutes checks that each Dubbo TCP port has a listener on its own VIP from the
// default range (without a VIP Istio would put every TCP service of port 20880 on one
// 0.0.0.0_20880 listener and tell them apart by nothing), and that the HTTP-family ports are
// routed by host: Spring Cloud HTTP on 8080, Triple on 50051.
//
// With the embedded default's example rules (rules/example.yaml), TCP traffic goes to the
// "baseline" subset (no tag, no lane; the alias host to its application's), user-service's
// default route is the canary's 90/10 split and shop-order's Triple default route the baseline.
func exampleListenersAndRoutes(s *xdsview.Snapshot, rules bool) error {
	var errs []error
	vips := map[netip.Addr]string{}
	for _, host := range []string{greetingsHost, shopOrderHost, orderAliasHost} {
		cluster := outboundCluster(host, dubboPort, "")
		var vip netip.AddrPort
		var err error
		switch {
		case rules && host == greetingsHost:
			cluster = outboundCluster(host, dubboPort, "baseline")
		case rules:
			cluster = outboundCluster(shopOrderHost, dubboPort, "baseline")
		}
		if rules && host != greetingsHost {
			vip, err = nthTCPListenerAddress(s, cluster, host == orderAliasHost)
		} else {
			vip, err = tcpListenerAddress(s, cluster)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", host, err))
			continue
		}
		if !defaultVIPRange.Contains(vip.Addr()) || vip.Port() != dubboPort {
			errs = append(errs, fmt.Errorf("%s: TCP listener on %v, want a VIP in %v port %d", host, vip, defaultVIPRange, dubboPort))
		}
		if other, dup := vips[vip.Addr()]; dup {
			errs = append(errs, fmt.Errorf("%s and %s share the VIP %v", host, other, vip.Addr()))
		}
		vips[vip.Addr()] = host
	}
	for _, r := range []struct {
		port int
		host string
	}{{userServicePort, userServiceHost}, {triPort, shopOrderHost}, {triPort, orderAliasHost}} {
		vh := s.VirtualHost(strconv.Itoa(r.port), r.host)
		if vh == nil || len(vh.GetRoutes()) == 0 {
			errs = append(errs, fmt.Errorf("route %d has no virtual host for %s", r.port, r.host))
			continue
		}
		want := map[string]uint32{outboundCluster(r.host, r.port, ""): 1}
		switch {
		case rules && r.host == userServiceHost:
			want = map[string]uint32{outboundCluster(r.host, r.port, "stable"): 90, outboundCluster(r.host, r.port, "canary"): 10}
		case rules:
			want = map[string]uint32{outboundCluster(shopOrderHost, r.port, "baseline"): 1}
		}
		if dest := xdsview.ClusterWeights(vh.GetRoutes()[len(vh.GetRoutes())-1]); !maps.Equal(dest, want) {
			errs = append(errs, fmt.Errorf("route %d, host %s: default route goes to %v, want %v", r.port, r.host, dest, want))
		}
	}
	return errors.Join(errs...)
}

// checkExampleConfig checks Istiod's config store: in inline mode ServiceEntries carry their
// endpoints and there are no WorkloadEntries; in workloadEntry mode each ServiceEntry has a
// selector and no endpoints, and the WorkloadEntries it selects are exactly its instances.
func checkExampleConfig(t *testing.T, i *servers.Istiod, workloadEntries bool) {
	t.Helper()
	objs := inNamespace(configz(t, i, "ServiceEntry", "WorkloadEntry"), exampleNamespace)
	var ses, wes []istioObject
	for _, o := range objs {
		if o.Kind == "ServiceEntry" {
			ses = append(ses, o)
		} else {
			wes = append(wes, o)
		}
	}
	seHosts := map[string]istioObject{}
	for _, se := range ses {
		hosts := se.hosts()
		if len(hosts) != 1 {
			t.Errorf("ServiceEntry %s has hosts %v, want one", se.Metadata.Name, hosts)
			continue
		}
		seHosts[hosts[0]] = se
	}
	if got, want := slices.Sorted(maps.Keys(seHosts)), slices.Sorted(maps.Keys(exampleAddresses)); !slices.Equal(got, want) {
		t.Fatalf("Istiod's ServiceEntries in %s have hosts %v, want %v", exampleNamespace, got, want)
	}
	for host, se := range seHosts {
		var addrs []string
		sel, hasSel := se.Spec["workloadSelector"].(map[string]any)
		eps, _ := se.Spec["endpoints"].([]any)
		switch {
		case !workloadEntries && (hasSel || len(wes) > 0):
			t.Errorf("inline mode: ServiceEntry %s has selector %v; WorkloadEntries in Istiod: %d", host, sel, len(wes))
		case !workloadEntries:
			for _, e := range eps {
				addrs = append(addrs, fmt.Sprint(e.(map[string]any)["address"]))
			}
		case len(eps) > 0 || !hasSel:
			t.Errorf("workloadEntry mode: ServiceEntry %s has %d inline endpoints, selector %v", host, len(eps), sel)
		default:
			labels, _ := sel["labels"].(map[string]any)
			for _, we := range wes {
				weLabels, _ := we.Spec["labels"].(map[string]any)
				if len(labels) > 0 && selects(labels, weLabels) {
					addrs = append(addrs, fmt.Sprint(we.Spec["address"]))
				}
			}
		}
		slices.Sort(addrs)
		if !slices.Equal(addrs, exampleAddresses[host]) {
			t.Errorf("ServiceEntry %s is backed by %v, want %v", host, addrs, exampleAddresses[host])
		}
	}
	if workloadEntries && len(wes) != 10 {
		t.Errorf("Istiod has %d WorkloadEntries in %s, want 10 (one per routable instance)", len(wes), exampleNamespace)
	}
}

// selects reports whether every selector label is among labels.
func selects(selector, labels map[string]any) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || fmt.Sprint(lv) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// tcpListenerAddress finds the outbound listener whose TCP proxy forwards to clusterName and
// returns its address.
func tcpListenerAddress(s *xdsview.Snapshot, clusterName string) (netip.AddrPort, error) {
	var found []netip.AddrPort
	for _, l := range s.Listeners {
		if !listenerForwardsTo(l, clusterName) {
			continue
		}
		sa := l.GetAddress().GetSocketAddress()
		addr, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
		found = append(found, netip.AddrPortFrom(addr, uint16(sa.GetPortValue())))
	}
	if len(found) != 1 {
		return netip.AddrPort{}, fmt.Errorf("%d listeners forward TCP to %s (%v), want 1", len(found), clusterName, found)
	}
	return found[0], nil
}

// nthTCPListenerAddress is for two hosts whose TCP listeners (each on its own VIP) forward to one
// cluster: the lower VIP, or the higher with second.
func nthTCPListenerAddress(s *xdsview.Snapshot, clusterName string, second bool) (netip.AddrPort, error) {
	var found []netip.AddrPort
	for _, l := range s.Listeners {
		if listenerForwardsTo(l, clusterName) {
			sa := l.GetAddress().GetSocketAddress()
			addr, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
			found = append(found, netip.AddrPortFrom(addr, uint16(sa.GetPortValue())))
		}
	}
	if len(found) != 2 {
		return netip.AddrPort{}, fmt.Errorf("%d listeners forward TCP to %s (%v), want 2", len(found), clusterName, found)
	}
	slices.SortFunc(found, func(a, b netip.AddrPort) int { return a.Compare(b) })
	if second {
		return found[1], nil
	}
	return found[0], nil
}

func listenerForwardsTo(l *listenerv3.Listener, clusterName string) bool {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var tp tcpproxyv3.TcpProxy
			if tc := f.GetTypedConfig(); tc == nil || tc.UnmarshalTo(&tp) != nil {
				continue
			}
			if tp.GetCluster() == clusterName {
				return true
			}
		}
	}
	return false
}
