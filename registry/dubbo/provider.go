package dubbo

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// DefaultWeight is Dubbo's provider weight when the URL has none.
const DefaultWeight = 100

// Protocol maps a Dubbo protocol name to the model's protocol. rest and http are Dubbo's HTTP
// protocols; tri (Triple) is gRPC-compatible HTTP/2. Anything else (injvm, hessian, thrift, rmi,
// consumer, override, empty, ...) is not something the mesh can route by protocol: false.
func Protocol(name string) (registry.Protocol, bool) {
	switch strings.ToLower(name) {
	case "dubbo":
		return registry.ProtocolDubbo, true
	case "tri", "triple":
		return registry.ProtocolTriple, true
	case "grpc":
		return registry.ProtocolGRPC, true
	case "rest", "http":
		return registry.ProtocolHTTP, true
	case "https":
		return registry.ProtocolHTTPS, true
	}
	return "", false
}

// Member is what one running instance contributes to a service: the ports it serves (each
// instance's Ports map refers to them by name) and the instance itself.
type Member struct {
	Ports    []registry.Port
	Instance registry.Instance
	// Registered is the instance's registration time (the timestamp parameter, Unix ms), 0 when
	// unknown. Of two registrations of the same address and port (a restarted provider whose old
	// ephemeral node has not expired yet) the newer wins.
	Registered int64
	// Process identifies the operating-system process when the registry says (host and the pid
	// parameter). Assemble makes the members of one process that serve different ports one
	// instance: Istio sends every service port's traffic to every endpoint, so a host listed once
	// per protocol would get a double share and be sent protocols on the wrong entry.
	Process string
}

// Provider is one provider URL mapped to the model: the service it belongs to and its member.
type Provider struct {
	Key ServiceKey
	Member
}

// NewProvider maps a provider URL (already configured, see Configurators.Apply) to the model:
//   - the port is named after the model protocol ("dubbo", "tri", "http", ...);
//   - the instance ID is "host:port" (brackets around IPv6), the address the host;
//   - weight is the weight parameter (default 100; not an integer in 0-2^31: error bad-weight);
//   - the instance is disabled when disabled=true, or when there is no disabled parameter and
//     enabled=false (Dubbo's RegistryDirectory rule); deprecated=true keeps it enabled (Dubbo
//     only logs a warning) and passes on as the "deprecated" label;
//   - Healthy is true: a registered provider is a live one (its znode is ephemeral);
//   - Labels are the URL parameters as Labels() selects them.
func NewProvider(u *URL) (Provider, error) {
	proto, ok := Protocol(u.Protocol)
	if !ok {
		return Provider{}, reasonf(ReasonUnknownProtocol, "protocol %q is not one the mesh can route (dubbo, tri, grpc, rest, http, https)", truncate(u.Protocol, 40))
	}
	key := u.Key()
	if key.Interface == "" {
		return Provider{}, reasonf(ReasonNoInterface, "URL names no interface (no interface parameter, no path)")
	}
	if u.Host == "" {
		return Provider{}, reasonf(ReasonBadHost, "URL has no host")
	}
	if err := registry.CheckAddress(u.Host); err != nil {
		// Istio would drop the endpoint: reject the provider where it can be seen instead.
		return Provider{}, reasonf(ReasonBadHost, "provider address: %v", err)
	}
	if u.Port == 0 {
		return Provider{}, reasonf(ReasonBadPort, "URL has no port")
	}
	weight, err := Weight(u.Params)
	if err != nil {
		return Provider{}, err
	}
	name := string(proto)
	ts, _ := strconv.ParseInt(u.Params["timestamp"], 10, 64)
	return Provider{
		Key: key,
		Member: Member{
			Ports: []registry.Port{{Name: name, Protocol: proto}},
			Instance: registry.Instance{
				ID:      u.Address(),
				Address: u.Host,
				Ports:   map[string]uint32{name: u.Port},
				Labels:  Labels(u.Params),
				Weight:  weight,
				Healthy: true,
				Enabled: Enabled(u.Params),
			},
			Registered: ts,
			Process:    process(u),
		},
	}, nil
}

// Weight returns the weight parameter, DefaultWeight when it is absent or empty.
func Weight(params map[string]string) (uint32, error) {
	v, ok := params["weight"]
	if !ok || v == "" {
		return DefaultWeight, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 31)
	if err != nil {
		return 0, reasonf(ReasonBadWeight, "weight %q is not an integer in 0-%d", truncate(v, 20), 1<<31-1)
	}
	return uint32(n), nil
}

// Enabled applies Dubbo's rule: disabled=true disables; without a disabled parameter,
// enabled=false does. Booleans are Java's Boolean.parseBoolean (only "true", any case, is true).
func Enabled(params map[string]string) bool {
	if v, ok := params["disabled"]; ok {
		return !strings.EqualFold(v, "true")
	}
	if v, ok := params["enabled"]; ok && v != "" {
		return strings.EqualFold(v, "true")
	}
	return true
}

// IsVolatile reports parameters that change on every restart of an unchanged provider
// (registry.VolatileLabelKeys). They never become labels.
func IsVolatile(key string) bool { return slices.Contains(registry.VolatileLabelKeys(), key) }

// IsSensitive reports parameters that carry credentials (Dubbo's provider token, passwords,
// keys). They are never labels and never shown.
func IsSensitive(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"token", "password", "passwd", "secret", "credential", "accesskey", "access-key", "access_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Labels selects and renames the parameters that become instance labels:
//   - application becomes "app" and dubbo.tag becomes "dubbo-tag" (the keys the rules engine
//     routes on);
//   - dropped: volatile parameters (IsVolatile), credentials (IsSensitive), what the model holds
//     elsewhere (interface, group, version, weight, disabled, enabled), the method list (long,
//     and not a property of the instance), and Dubbo 3's application-level plumbing
//     (dubbo.endpoints, dubbo.metadata-service.url-params, dubbo.metadata.*);
//   - everything else passes as given; translate sanitises names and values for Istio.
func Labels(params map[string]string) map[string]string {
	out := make(map[string]string, len(params))
	for k, v := range params {
		switch {
		case IsVolatile(k), IsSensitive(k):
			continue
		}
		switch k {
		case "interface", "group", "version", "weight", "disabled", "enabled", "methods",
			"dubbo.endpoints", "dubbo.metadata-service.url-params":
			continue
		case "application":
			k = "app"
		case "dubbo.tag":
			k = "dubbo-tag"
		}
		if strings.HasPrefix(k, "dubbo.metadata.") {
			continue
		}
		if v == "" {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// InterfaceService assembles the providers of one service key into a dubbo-interface service.
// Providers of other keys are ignored. Instances with the same ID (one process serving dubbo and
// tri on one port) merge into one instance with both ports; of two registrations of the same ID
// and port the newer (Registered) wins, ties going to the later in the slice. The service's
// "app" label is set when every provider names the same application.
func InterfaceService(key ServiceKey, providers []Provider) *registry.Service {
	members := make([]Member, 0, len(providers))
	for _, p := range providers {
		if p.Key == key {
			members = append(members, p.Member)
		}
	}
	s := Assemble(members)
	s.Kind = registry.KindDubboInterface
	s.Name, s.Group, s.Version = key.Interface, key.Group, key.Version
	app, same := "", true
	for i, m := range members {
		a := m.Instance.Labels["app"]
		if i == 0 {
			app = a
		} else if a != app {
			same = false
		}
	}
	if same && app != "" {
		s.Labels = map[string]string{"app": app}
	}
	return s
}

// Assemble builds the ports and instances of a service from its members; the caller sets kind,
// name and labels. Members with one instance ID merge into one instance:
//   - for each port, the newest registration (Registered; later in the slice on a tie) wins: a
//     restarted provider replaces the registration it left behind;
//   - the winners for different ports (one process serving several protocols, see Member.Process)
//     combine: the instance takes traffic only as far as every port may (lowest weight, enabled
//     and healthy only if all are), and its labels are the union, newer values winning.
func Assemble(members []Member) *registry.Service {
	members = mergeProcesses(members)
	type slot struct {
		id, port string
	}
	winner := make(map[slot]int)
	ports := make(map[string]registry.Port)
	newer := func(i, j int) bool { // is members[i] newer than members[j]?
		if members[i].Registered != members[j].Registered {
			return members[i].Registered > members[j].Registered
		}
		return i > j
	}
	for i, m := range members {
		for _, p := range m.Ports {
			if _, ok := ports[p.Name]; !ok {
				ports[p.Name] = p
			}
		}
		for name := range m.Instance.Ports {
			k := slot{m.Instance.ID, name}
			if w, ok := winner[k]; !ok || newer(i, w) {
				winner[k] = i
			}
		}
	}
	// The winners of each instance, oldest first, so newer labels overwrite older ones.
	byID := make(map[string][]int)
	for k, i := range winner {
		if !slices.Contains(byID[k.id], i) {
			byID[k.id] = append(byID[k.id], i)
		}
	}
	svc := &registry.Service{Ports: make([]registry.Port, 0, len(ports)), Instances: make([]registry.Instance, 0, len(byID))}
	for _, p := range ports {
		svc.Ports = append(svc.Ports, p)
	}
	sort.Slice(svc.Ports, func(i, j int) bool { return svc.Ports[i].Name < svc.Ports[j].Name })
	for id, idx := range byID {
		sort.Slice(idx, func(a, b int) bool { return newer(idx[b], idx[a]) })
		newest := members[idx[len(idx)-1]].Instance
		in := registry.Instance{ID: id, Address: newest.Address, Locality: newest.Locality, Ports: make(map[string]uint32),
			Weight: newest.Weight, Healthy: true, Enabled: true}
		for _, i := range idx {
			m := members[i].Instance
			for name, n := range m.Ports {
				if winner[slot{id, name}] == i {
					in.Ports[name] = n
				}
			}
			in.Weight = min(in.Weight, m.Weight)
			in.Healthy = in.Healthy && m.Healthy
			in.Enabled = in.Enabled && m.Enabled
			for k, v := range m.Labels {
				if in.Labels == nil {
					in.Labels = make(map[string]string, len(m.Labels))
				}
				in.Labels[k] = v
			}
		}
		svc.Instances = append(svc.Instances, in)
	}
	svc.SortInstances()
	return svc
}

// process names the process behind a provider URL, "" when the URL has no pid.
func process(u *URL) string {
	if pid := u.Params["pid"]; pid != "" {
		return u.Host + "#" + pid
	}
	return ""
}

// mergeProcesses gives the members of one process the same instance ID (the smallest of theirs)
// when their port names differ, so Assemble merges them into one instance with all their ports.
// Members of a process that repeat a port name (two dubbo protocols on two ports) stay apart.
func mergeProcesses(members []Member) []Member {
	byProcess := make(map[string][]int)
	for i, m := range members {
		if m.Process != "" {
			byProcess[m.Process] = append(byProcess[m.Process], i)
		}
	}
	var out []Member
	for _, idx := range byProcess {
		if len(idx) < 2 {
			continue
		}
		names := make(map[string]bool)
		id := ""
		disjoint := true
		for _, i := range idx {
			for name := range members[i].Instance.Ports {
				if names[name] {
					disjoint = false
				}
				names[name] = true
			}
			if id == "" || members[i].Instance.ID < id {
				id = members[i].Instance.ID
			}
		}
		if !disjoint {
			continue
		}
		if out == nil {
			out = append([]Member(nil), members...)
		}
		for _, i := range idx {
			out[i].Instance.ID = id
		}
	}
	if out == nil {
		return members
	}
	return out
}
