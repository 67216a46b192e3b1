package translate

import (
	"fmt"
	"maps"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mcp-bridge/mcp-bridge/internal/benchestate"
	"github.com/mcp-bridge/mcp-bridge/istio"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// realisticLabels are the labels the adapters make of what real providers register
// (docs/benchmarks.md "Lean endpoints"): a Dubbo 2 provider URL's parameters through
// dubbo.Labels, a Dubbo 3 application instance's metadata through dubbo.Labels plus "app" (as
// AppMember does), a Spring Cloud instance's metadata as Nacos, Eureka and Consul carry it.
func realisticLabels(s *registry.Service, i, j int) map[string]string {
	switch s.Kind {
	case registry.KindDubboInterface:
		q, _ := url.ParseQuery(fmt.Sprintf("anyhost=true&application=app-%d&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&"+
			"interface=%s&methods=create,get,list,update,delete,cancel,refund&pid=%d&release=3.2.10&revision=1.4.2&"+
			"service-name-mapping=true&side=provider&timeout=3000&retries=2&loadbalance=random&threads=200&"+
			"timestamp=1712345678901&version=1.0.0&metadata-type=remote&register-mode=interface&qos.enable=false", i, s.Name, 4000+j))
		p := map[string]string{}
		for k, v := range q {
			p[k] = v[0]
		}
		return dubbo.Labels(p)
	case registry.KindDubboApplication:
		l := dubbo.Labels(map[string]string{
			"dubbo.endpoints":                   `[{"port":20880,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`,
			"dubbo.metadata-service.url-params": `{"connections":"1","version":"1.0.0","dubbo":"2.0.2","release":"3.2.10","side":"provider","port":"20880","protocol":"dubbo"}`,
			"dubbo.metadata.revision":           "5b2c9e0d41a7f3c8", "dubbo.metadata.storage-type": "local", "timestamp": "1712345678901",
		})
		if l == nil {
			l = map[string]string{}
		}
		l["app"] = s.Name
		return l
	default:
		return map[string]string{"management.port": "8081", "secure": "false", "version": "1.3.0", "zone": "zone-a",
			"spring.profiles.active": "prod", "git.commit.id": "9f1c2ab"}
	}
}

// labelBytes is the encoded size of the endpoints' labels and the ServiceEntries' bodies.
func labelBytes(t testing.TB, out *Output) (labels, bodies, endpoints int) {
	for _, r := range out.Resources[istio.CollectionServiceEntry] {
		bodies += len(r.Body.GetValue())
		for _, ep := range seSpec(t, r).GetEndpoints() {
			endpoints++
			l := maps.Clone(ep.GetLabels())
			delete(l, LabelTLSMode) // ours, the same in every mode
			labels += proto.Size(&networking.WorkloadEntry{Labels: l})
		}
	}
	return labels, bodies, endpoints
}

// TestLeanEndpointsSize measures what the routing label mode saves on realistic registry data,
// per kind of service and for the whole push (go test -run TestLeanEndpointsSize -v ./translate
// prints the table of docs/benchmarks.md "Lean endpoints"), and holds the saving on Dubbo 2
// providers, where it matters most, to at least a third of the ServiceEntry.
func TestLeanEndpointsSize(t *testing.T) {
	const services, per = 300, 10
	estate := benchestate.Estate(services, per, benchestate.Options{AppPrefix: "app-", Labels: realisticLabels})
	kinds := []registry.Kind{registry.KindDubboInterface, registry.KindDubboApplication, registry.KindApplication}
	type sizes struct{ labels, bodies, endpoints int }
	measure := func(mode string, ss []*registry.Service) sizes {
		o := benchOptions(EndpointModeInline)
		o.Labels.Mode = mode
		l, b, n := labelBytes(t, mustNew(t, o).Translate(ss))
		return sizes{l, b, n}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| kind (%d instances per service) | label bytes per endpoint: all -> routing | ServiceEntry bytes: all -> routing | saved |\n|---|---|---|---|\n", per)
	for _, k := range append(kinds, "") {
		var ss []*registry.Service
		for _, s := range estate {
			if k == "" || s.Kind == k {
				ss = append(ss, s)
			}
		}
		all, lean := measure(LabelModeAll, ss), measure(LabelModeRouting, ss)
		name := string(k)
		if k == "" {
			name = fmt.Sprintf("whole push (%d services, a third of each kind)", len(ss))
		}
		saved := 1 - float64(lean.bodies)/float64(all.bodies)
		fmt.Fprintf(&b, "| %s | %d -> %d | %d -> %d | %.0f%% |\n", name, all.labels/all.endpoints, lean.labels/lean.endpoints,
			all.bodies/len(ss), lean.bodies/len(ss), 100*saved)
		if k == registry.KindDubboInterface && saved < 1.0/3 {
			t.Errorf("routing mode saves %.0f%% of a Dubbo 2 ServiceEntry, want at least a third", 100*saved)
		}
		if lean.bodies > all.bodies {
			t.Errorf("%s: routing mode is larger than all (%d > %d bytes)", name, lean.bodies, all.bodies)
		}
	}
	t.Log(b.String())
}
