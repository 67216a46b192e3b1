package nacostest

import (
	"fmt"
	"strings"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// AppKey is the key of an application service of the public namespace's default group.
func AppKey(name string) registry.Key {
	return registry.Key{Kind: registry.KindApplication, Namespace: publicNamespace, Group: defaultGroup, Name: name}
}

// InstancesAre checks a service's instances, rendered "address:port/weight/healthy/enabled".
func InstancesAre(want ...string) func(*registry.Service) error {
	return func(s *registry.Service) error {
		var got []string
		for _, in := range s.Instances {
			var port uint32
			for _, p := range in.Ports {
				port = p
			}
			got = append(got, fmt.Sprintf("%s:%d/%d/%v/%v", in.Address, port, in.Weight, in.Healthy, in.Enabled))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("instances %q, want %q", got, want)
		}
		return nil
	}
}
