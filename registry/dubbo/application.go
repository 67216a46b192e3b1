package dubbo

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Endpoint is one element of the dubbo.endpoints metadata of a Dubbo 3 application-level
// instance: [{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}].
type Endpoint struct {
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
}

// ParseEndpoints parses dubbo.endpoints.
func ParseEndpoints(s string) ([]Endpoint, error) {
	var eps []Endpoint
	if err := json.Unmarshal([]byte(s), &eps); err != nil {
		return nil, reasonf(ReasonBadEndpoints, "dubbo.endpoints is not a JSON list of {port, protocol}: %w", err)
	}
	for _, e := range eps {
		if e.Port == 0 || e.Port > 65535 {
			return nil, reasonf(ReasonBadEndpoints, "dubbo.endpoints: port %d of protocol %q is out of range 1-65535", e.Port, truncate(e.Protocol, 40))
		}
		if e.Protocol == "" {
			return nil, reasonf(ReasonBadEndpoints, "dubbo.endpoints: port %d has no protocol", e.Port)
		}
	}
	return eps, nil
}

// AppMember maps a Dubbo 3 application-level instance (a Curator ServiceInstance with a
// ZookeeperInstance payload, a Nacos instance of service <app>) to a Member:
//   - ports come from dubbo.endpoints, one per endpoint, named after the model protocol; a second
//     endpoint of the same protocol is named "<protocol>-<port>"; endpoints of protocols the mesh
//     cannot route are left out (all of them: error unknown-protocol). Without dubbo.endpoints the
//     instance port is a dubbo port (what Dubbo 3 registers when it exposes one dubbo protocol);
//   - ID is the registry's instance id, Address the host; weight, enabled and labels are read
//     from the metadata as from provider URL parameters (see NewProvider, Labels), with "app"
//     set to the application.
func AppMember(app, id, host string, port uint32, metadata map[string]string) (Member, error) {
	if host == "" {
		return Member{}, reasonf(ReasonBadHost, "instance %q has no address", truncate(id, 80))
	}
	if err := checkHost(strings.Trim(host, "[]")); err != nil {
		return Member{}, err
	}
	host = strings.Trim(host, "[]")
	if err := registry.CheckAddress(host); err != nil {
		// Istio would drop the endpoint: reject the instance where it can be seen instead.
		return Member{}, reasonf(ReasonBadHost, "instance %q: address: %v", truncate(id, 80), err)
	}
	var eps []Endpoint
	if s, ok := metadata["dubbo.endpoints"]; ok && s != "" {
		var err error
		if eps, err = ParseEndpoints(s); err != nil {
			return Member{}, err
		}
	} else {
		if port == 0 || port > 65535 {
			return Member{}, reasonf(ReasonBadPort, "instance %q has no dubbo.endpoints and its port %d is out of range 1-65535", truncate(id, 80), port)
		}
		eps = []Endpoint{{Port: port, Protocol: "dubbo"}}
	}
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].Port < eps[j].Port })
	m := Member{Instance: registry.Instance{ID: id, Address: host, Ports: make(map[string]uint32), Healthy: true}}
	var unknown []string
	for _, e := range eps {
		proto, ok := Protocol(e.Protocol)
		if !ok {
			unknown = append(unknown, e.Protocol)
			continue
		}
		name := string(proto)
		// The same endpoint listed again is one port, not two ports of one name (which Istio
		// rejects).
		if port, taken := m.Instance.Ports[name]; taken {
			if port == e.Port {
				continue
			}
			name = fmt.Sprintf("%s-%d", proto, e.Port)
			if _, taken := m.Instance.Ports[name]; taken {
				continue
			}
		}
		m.Ports = append(m.Ports, registry.Port{Name: name, Protocol: proto})
		m.Instance.Ports[name] = e.Port
	}
	if len(m.Ports) == 0 {
		return Member{}, reasonf(ReasonUnknownProtocol, "instance %q: no endpoint speaks a protocol the mesh can route (%s)", truncate(id, 80), truncate(strings.Join(unknown, ","), 80))
	}
	w, err := Weight(metadata)
	if err != nil {
		return Member{}, err
	}
	m.Instance.Weight = w
	m.Instance.Enabled = Enabled(metadata)
	m.Registered, _ = strconv.ParseInt(metadata["timestamp"], 10, 64)
	labels := Labels(metadata)
	if labels == nil {
		labels = make(map[string]string, 1)
	}
	labels["app"] = app
	// A Dubbo 3 application's identity has no version (its interfaces carry theirs in the
	// metadata service), so a version in the instance's metadata is a property of the instance,
	// as a Dubbo 2 provider's is of its service key: keep it, for the condition and tag rules
	// that filter providers by version (a subset on the label).
	if v := metadata["version"]; v != "" {
		labels["version"] = v
	}
	m.Instance.Labels = labels
	return m, nil
}

// ApplicationService assembles the members of a Dubbo 3 application into a dubbo-application
// service (instances merged as in InterfaceService).
func ApplicationService(app string, members []Member) *registry.Service {
	s := Assemble(members)
	s.Kind = registry.KindDubboApplication
	s.Name = app
	s.Labels = map[string]string{"app": app}
	return s
}

// ParseMapping parses an interface->application mapping value (ZooKeeper /dubbo/mapping/<iface>
// data, Nacos config dataId=<iface> group=mapping): a comma-separated list of application names.
// The result is sorted, without duplicates or empty names.
func ParseMapping(data string) []string {
	seen := make(map[string]bool)
	var apps []string
	for _, a := range strings.Split(data, ",") {
		a = strings.TrimSpace(a)
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		apps = append(apps, a)
	}
	sort.Strings(apps)
	return apps
}

// ConsumerMatches reports whether a consumer URL (a consumers/ entry) refers to a service key, as
// Dubbo's UrlUtils.isMatch decides: same interface (or "*"); consumer group "*", equal, or a
// comma-separated list containing the provider's; consumer version "*" or equal.
func ConsumerMatches(consumer *URL, key ServiceKey) bool {
	ci := consumer.Interface()
	if ci != "*" && key.Interface != "*" && ci != key.Interface {
		return false
	}
	cg := consumer.Params["group"]
	groupOK := cg == "*" || cg == key.Group
	if !groupOK && cg != "" && key.Group != "" {
		for _, g := range strings.Split(cg, ",") {
			if g == key.Group {
				groupOK = true
				break
			}
		}
	}
	cv := consumer.Params["version"]
	return groupOK && (cv == "*" || cv == key.Version)
}
