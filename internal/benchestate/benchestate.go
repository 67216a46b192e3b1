// Package benchestate builds the synthetic registry estate that the translate and bridge
// benchmarks (and the bridge's O(changed) pipeline test) run on: a mixed estate of Dubbo 2
// interfaces, Dubbo 3 applications and Spring Cloud services, at whatever size the caller asks
// for (the design target is 10k services with 100k instances). It lives in one place so the
// packages measure the same shape of estate; what they legitimately differ in (the Dubbo 3
// application names, where addresses start, the instance labels) is an Options field, so each
// caller still gets exactly the estate its recorded benchmark results were measured on.
package benchestate

import (
	"fmt"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// The estate's two registries: Dubbo services in ZooKeeper, Spring Cloud services in Nacos.
const (
	RegistryZK    = "zk"
	RegistryNacos = "nacos"
)

// Options are what the callers' estates differ in.
type Options struct {
	// AppPrefix prefixes the index in a Dubbo 3 application's name.
	AppPrefix string
	// FirstAddress is the index of the first instance's address: instance k of the estate (counted
	// from 0 across all services) gets 10.x.y.z with x.y.z = FirstAddress+k, so every address is
	// unique up to 2^24 instances.
	FirstAddress int
	// Labels returns the registry labels of instance j of service i (s, whose instances are not yet
	// filled in). A new map per call: the generated services own their maps. Nil: no labels.
	Labels func(s *registry.Service, i, j int) map[string]string
}

// Estate builds n services of per instances each: a third Dubbo 2 interfaces (one dubbo port), a
// third Dubbo 3 applications (dubbo and tri ports), a third Spring Cloud HTTP services, every
// instance healthy, enabled, weight 100, spread over three zones of one region.
func Estate(n, per int, o Options) []*registry.Service {
	out := make([]*registry.Service, n)
	k := o.FirstAddress
	for i := range out {
		var s *registry.Service
		switch i % 3 {
		case 0:
			s = &registry.Service{Registry: RegistryZK, Kind: registry.KindDubboInterface, Version: "1.0.0",
				Name:  fmt.Sprintf("com.example.biz%d.OrderService%d", i%97, i),
				Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}}}
		case 1:
			s = &registry.Service{Registry: RegistryZK, Kind: registry.KindDubboApplication, Name: fmt.Sprintf("%s%d", o.AppPrefix, i),
				Ports: []registry.Port{{Name: "dubbo", Protocol: registry.ProtocolDubbo}, {Name: "tri", Protocol: registry.ProtocolTriple}}}
		default:
			s = &registry.Service{Registry: RegistryNacos, Kind: registry.KindApplication, Group: "DEFAULT_GROUP", Name: fmt.Sprintf("web-%d", i),
				Ports: []registry.Port{{Name: "http", Protocol: registry.ProtocolHTTP}}}
		}
		s.Instances = make([]registry.Instance, per)
		for j := range s.Instances {
			ip := fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255)
			k++
			ports := make(map[string]uint32, len(s.Ports))
			for _, p := range s.Ports {
				ports[p.Name] = defaultPort(p.Protocol)
			}
			s.Instances[j] = registry.Instance{
				ID: fmt.Sprintf("%s:%d", ip, ports[s.Ports[0].Name]), Address: ip, Ports: ports, Weight: 100, Healthy: true, Enabled: true,
				Locality: registry.Locality{Region: "cn-hangzhou", Zone: fmt.Sprintf("cn-hangzhou-%c", 'a'+j%3)},
			}
			if o.Labels != nil {
				s.Instances[j].Labels = o.Labels(s, i, j)
			}
		}
		out[i] = s
	}
	return out
}

// defaultPort is the port the estate's instances listen on for a protocol.
func defaultPort(p registry.Protocol) uint32 {
	switch p {
	case registry.ProtocolDubbo:
		return 20880
	case registry.ProtocolTriple:
		return 50051
	default: // registry.ProtocolHTTP, the only other protocol the estate uses
		return 8080
	}
}
