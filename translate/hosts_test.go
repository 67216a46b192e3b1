package translate

import (
	"slices"
	"testing"

	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
)

// TestHostsIndex: Output.Hosts names, for every service, exactly the hosts of the ServiceEntries
// emitted for it (alias ServiceEntries included), so a VirtualService producer can trust it
// without decoding specs; and it follows a change incrementally (a removed service leaves it).
func TestHostsIndex(t *testing.T) {
	for _, mode := range []string{EndpointModeInline, EndpointModeWorkloadEntry} {
		t.Run(mode, func(t *testing.T) {
			tr := mustNew(t, goldenOptions(mode))
			services := loadServices(t, "testdata/services.yaml")
			out := tr.Translate(services)
			fromSpecs := map[string][]string{}
			for _, r := range out.Resources[istio.CollectionServiceEntry] {
				fromSpecs[r.Source] = append(fromSpecs[r.Source], seSpec(t, r).Hosts...)
			}
			if len(out.Hosts) != len(fromSpecs) {
				t.Errorf("%d services in Hosts, %d with ServiceEntries", len(out.Hosts), len(fromSpecs))
			}
			aliased := false
			for src, want := range fromSpecs {
				got := out.HostsOf(src)
				if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
					t.Errorf("HostsOf(%s) = %v, ServiceEntries have %v", src, got, want)
				}
				aliased = aliased || len(want) > 1
			}
			if !aliased {
				t.Error("no service with alias hosts in testdata: the test covers nothing of aliases")
			}
			if got := out.HostsOf("no/such-service"); got != nil {
				t.Errorf("HostsOf(unknown) = %v", got)
			}

			// Drop the first service with a ServiceEntry: its entry goes, the others stay.
			gone := out.Hosts[0].Source
			var rest []*registry.Service
			for _, s := range services {
				if sourceOf(s) != gone {
					rest = append(rest, s)
				}
			}
			again := tr.Translate(rest)
			if again.HostsOf(gone) != nil || len(again.Hosts) >= len(out.Hosts) {
				t.Errorf("after removing %s: HostsOf = %v, %d entries (before %d)", gone, again.HostsOf(gone), len(again.Hosts), len(out.Hosts))
			}
		})
	}
}
