package translate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// protocolInfo is how a registry protocol appears in Istio: the port protocol and the name of the
// service's main port of that protocol (extra ports get "<name>-<their name>").
type protocolInfo struct {
	istio string
	name  string
	rank  int // main ports claim numbers in this order when two want the same one
}

var protocols = map[registry.Protocol]protocolInfo{
	registry.ProtocolDubbo:  {"TCP", "tcp-dubbo", 0},
	registry.ProtocolTriple: {"GRPC", "grpc-tri", 1},
	registry.ProtocolHTTP:   {"HTTP", "http", 2},
	registry.ProtocolHTTPS:  {"HTTPS", "https", 3},
	registry.ProtocolGRPC:   {"GRPC", "grpc", 4},
	registry.ProtocolTCP:    {"TCP", "tcp", 5},
}

// fallbackPorts are used when a protocol has no configured number and no instance says which
// port it uses (a service with no instances yet): the protocol's conventional port.
var fallbackPorts = map[registry.Protocol]uint32{
	registry.ProtocolDubbo:  20880,
	registry.ProtocolTriple: 50051,
	registry.ProtocolGRPC:   50051,
	registry.ProtocolHTTP:   80,
	registry.ProtocolHTTPS:  443,
}

// svcPort is one port of the ServiceEntry.
type svcPort struct {
	key    string // registry.Port.Name: how instances refer to it
	name   string // Istio port name
	proto  string // Istio protocol
	number uint32
	main   bool
	rank   int
}

// servicePorts works out a service's ports: names by protocol, numbers from the configuration or
// from what most instances use (ties: the lowest), so that neither one odd instance nor instance
// order moves them. Two ports on one number: the main ports (in protocol order), then the others
// by name, claim numbers first; a later one moves to the next free number, with a note.
func servicePorts(s *registry.Service, configured map[registry.Protocol]uint32, n *notes) []svcPort {
	var ports []svcPort
	seenKey := map[string]bool{}
	for _, p := range s.Ports {
		if p.Name == "" || seenKey[p.Name] {
			n.add(reasonPortDropped, fmt.Sprintf("port %q declared twice or unnamed", p.Name))
			continue
		}
		seenKey[p.Name] = true
		info, ok := protocols[p.Protocol]
		if !ok {
			n.add(reasonUnknownProtocol, fmt.Sprintf("port %q has protocol %q; treated as tcp", p.Name, p.Protocol))
			info = protocols[registry.ProtocolTCP]
			info.rank = len(protocols)
		}
		sp := svcPort{key: p.Name, proto: info.istio, rank: info.rank}
		if p.Name == string(p.Protocol) || p.Name == info.name {
			sp.name, sp.main = info.name, true
		} else {
			sp.name = fitLen(info.name+"-"+dnsLabel(p.Name), 63, info.name+"-"+p.Name)
		}
		sp.number = configured[p.Protocol]
		if sp.number == 0 {
			sp.number = commonPort(s.Instances, p.Name)
		}
		if sp.number == 0 {
			sp.number = fallbackPorts[p.Protocol]
		}
		if sp.number == 0 {
			n.add(reasonPortDropped, fmt.Sprintf("port %q: no instance gives its number and protocol %q has no default", p.Name, p.Protocol))
			continue
		}
		ports = append(ports, sp)
	}
	slices.SortFunc(ports, func(a, b svcPort) int {
		switch {
		case a.main != b.main:
			if a.main {
				return -1
			}
			return 1
		case a.rank != b.rank:
			return a.rank - b.rank
		}
		return strings.Compare(a.key, b.key)
	})
	numbers := map[uint32]string{}
	names := map[string]bool{}
	for i := range ports {
		p := &ports[i]
		if names[p.name] {
			// Two registry names sanitise to one Istio name ("Admin", "admin").
			old := p.name
			p.name = fitLen(p.name, 54, p.key) + "-" + shortHash(p.key)
			n.add(reasonPortConflict, fmt.Sprintf("port %q: name %q is taken, using %q", p.key, old, p.name))
		}
		names[p.name] = true
		if other, taken := numbers[p.number]; taken {
			want := p.number
			for numbers[p.number] != "" {
				p.number = p.number%65535 + 1
			}
			n.add(reasonPortConflict, fmt.Sprintf("port %q wants number %d, which %q has; using %d", p.key, want, other, p.number))
		}
		numbers[p.number] = p.key
	}
	slices.SortFunc(ports, func(a, b svcPort) int { return int(a.number) - int(b.number) })
	return ports
}

// commonPort is the number most instances give for the port, ties going to the lowest; 0 when no
// instance gives one. All instances count, healthy or not, so health flapping does not move it.
func commonPort(instances []registry.Instance, key string) uint32 {
	counts := map[uint32]int{}
	for i := range instances {
		if n := instances[i].Ports[key]; n > 0 && n <= 65535 {
			counts[n]++
		}
	}
	var best uint32
	for num, c := range counts {
		if c > counts[best] || c == counts[best] && num < best {
			best = num
		}
	}
	return best
}
