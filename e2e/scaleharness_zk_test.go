package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/registries"
	"github.com/mcp-bridge/mcp-bridge/translate"
)

// The scale harness's estate lives in ZooKeeper, every kind in the form its own framework writes:
//
//   - Dubbo 2 interfaces: provider URLs as znode names under <group>/dubbo/<interface>/providers;
//     a change (a new weight) is one multi-op (delete the old URL, create the new one), as a
//     provider re-registering does;
//   - Dubbo 3 applications: Curator instances under <group>/services/<app>/<ip:port> with
//     dubbo.endpoints (dubbo + tri) and weight in the payload metadata; a change is one setData;
//   - Spring Cloud applications: Spring Cloud Zookeeper's Curator instances under
//     <group>/services/<app>/<id>. They carry no weight (the adapter gives them Dubbo's default),
//     so the harness changes Dubbo services only.
//
// The estate is split into groups of at most harnessGroupInstances instances, each group under
// its own chroot read by its own registry writing to its own namespace: Istiod re-lists a
// namespace's WorkloadEntries on every WorkloadEntry event (docs/scale.md#workloadentries), so
// workloadEntry mode needs them spread, and the same layout serves every mode.

// harnessGroupInstances bounds the instances per registry and namespace (under the default
// maxWorkloadEntriesPerNamespace of 2,000).
const harnessGroupInstances = 1000

const (
	harnessDubboPort = 20880
	harnessTriPort   = 50051
	harnessHTTPPort  = 8080
)

// hService is one service of the estate and where Istio shows it.
type hService struct {
	kind     registry.Kind
	name     string // interface or application name
	group    int
	host     string
	clusters []string // outbound cluster per port, in the order of ports
	ports    []uint32
	insts    []hInstance
}

// hInstance is one instance: its address, current weight and znode.
type hInstance struct {
	addr   string
	weight uint32
	path   string // current znode path (a Dubbo 2 provider's changes with its weight)
}

type hEstate struct {
	groups   int
	services []*hService
}

func harnessGroupName(g int) string { return fmt.Sprintf("scale-g%03d", g) }

// newHarnessEstate lays out services x per instances: a third of each kind, in groups.
func newHarnessEstate(t *testing.T, services, per int) *hEstate {
	t.Helper()
	groups := max(1, (services*per+harnessGroupInstances-1)/harnessGroupInstances)
	e := &hEstate{groups: groups}
	zkType, ok := registries.Lookup("zookeeper")
	if !ok {
		t.Fatal("registry type zookeeper is not in the registry table")
	}
	regs := make([]translate.RegistryOptions, groups)
	for g := range regs {
		regs[g] = translate.RegistryOptions{Name: harnessGroupName(g), Namespace: harnessGroupName(g), Hosts: zkType.Hosts(translate.HostTemplates{})}
	}
	tr, err := translate.New(translate.Options{Registries: regs})
	if err != nil {
		t.Fatalf("translate options: %v", err)
	}
	k := 0
	for i := range services {
		s := &hService{group: i * groups / services}
		rs := &registry.Service{Registry: harnessGroupName(s.group)}
		switch i % 3 {
		case 0:
			s.kind, s.name, s.ports = registry.KindDubboInterface, fmt.Sprintf("com.example.biz%d.OrderService%d", i%97, i), []uint32{harnessDubboPort}
			rs.Version = "1.0.0"
		case 1:
			s.kind, s.name, s.ports = registry.KindDubboApplication, fmt.Sprintf("shop-app-%d", i), []uint32{harnessDubboPort, harnessTriPort}
		default:
			s.kind, s.name, s.ports = registry.KindApplication, fmt.Sprintf("web-%d", i), []uint32{harnessHTTPPort}
		}
		rs.Kind, rs.Name = s.kind, s.name
		s.host = tr.Host(rs)
		for _, p := range s.ports {
			s.clusters = append(s.clusters, outboundCluster(s.host, int(p), ""))
		}
		for range per {
			k++
			s.insts = append(s.insts, hInstance{addr: fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255), weight: 100})
		}
		e.services = append(e.services, s)
	}
	return e
}

// instances is the estate's instance count.
func (e *hEstate) instances() int {
	n := 0
	for _, s := range e.services {
		n += len(s.insts)
	}
	return n
}

// znode returns instance j of s's znode path and data at its current weight.
func (e *hEstate) znode(t *testing.T, s *hService, j int) (string, []byte) {
	t.Helper()
	in := s.insts[j]
	root := "/" + harnessGroupName(s.group)
	switch s.kind {
	case registry.KindDubboInterface:
		q := url.Values{"anyhost": {"true"}, "application": {"app-" + s.name}, "dubbo": {"2.0.2"}, "interface": {s.name},
			"methods": {"create,get,list,update,delete"}, "pid": {fmt.Sprint(4000 + j)}, "release": {"3.2.10"}, "side": {"provider"},
			"timestamp": {fmt.Sprint(1712345600000 + j)}, "version": {"1.0.0"}, "weight": {fmt.Sprint(in.weight)}}
		u := fmt.Sprintf("dubbo://%s:%d/%s?%s", in.addr, harnessDubboPort, s.name, q.Encode())
		return zktest.ProviderPath(root+"/dubbo", s.name, u), nil
	case registry.KindDubboApplication:
		id := fmt.Sprintf("%s:%d", in.addr, harnessDubboPort)
		return root + "/services/" + s.name + "/" + id, harnessCurator(t, s.name, id, in.addr, harnessDubboPort,
			"org.apache.dubbo.registry.zookeeper.ZookeeperInstance", map[string]string{
				"dubbo.endpoints":             fmt.Sprintf(`[{"port":%d,"protocol":"dubbo"},{"port":%d,"protocol":"tri"}]`, harnessDubboPort, harnessTriPort),
				"dubbo.metadata.revision":     "8a3f6c1d2e",
				"dubbo.metadata.storage-type": "local",
				"timestamp":                   fmt.Sprint(1712345600000 + j),
				"version":                     fmt.Sprintf("v%d", j%2),
				"weight":                      fmt.Sprint(in.weight),
			})
	default:
		id := fmt.Sprintf("%s-%08d", s.name, j)
		return root + "/services/" + s.name + "/" + id, harnessCurator(t, s.name, id, in.addr, harnessHTTPPort,
			"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance", map[string]string{
				"version": fmt.Sprintf("v%d", j%2), "zone": fmt.Sprintf("cn-hangzhou-%c", 'a'+j%3), "team": "web",
			})
	}
}

func harnessCurator(t *testing.T, app, id, addr string, port int, class string, metadata map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"name": app, "id": id, "address": addr, "port": port, "sslPort": nil,
		"payload":             map[string]any{"@class": class, "id": id, "name": app, "metadata": metadata},
		"registrationTimeUTC": 1712345600000, "serviceType": "DYNAMIC", "uriSpec": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// write creates every instance's znode (64 requests in flight, zktest.CreateMany).
func (e *hEstate) write(t *testing.T, c *zk.Conn) {
	t.Helper()
	nodes := make([]zktest.Node, 0, e.instances())
	for _, s := range e.services {
		for j := range s.insts {
			p, data := e.znode(t, s, j)
			s.insts[j].path = p
			nodes = append(nodes, zktest.Node{Path: p, Data: data})
		}
	}
	zktest.CreateMany(t, c, nodes)
}

// changeable reports whether a change can be made to s (its instances carry a weight).
func (s *hService) changeable() bool { return s.kind != registry.KindApplication }

// pick returns the service the k-th change goes to: spread over groups by a prime stride,
// skipping Spring services, and distinct for consecutive k (as long as the estate has more
// Dubbo services than changes in one burst).
func (e *hEstate) pick(k int) int {
	n := len(e.services)
	i := (k*7919 + 13) % n
	for !e.services[i].changeable() {
		i = (i + 1) % n
	}
	return i
}

// change gives instance j of service i a new weight in ZooKeeper with one request, and returns
// the weight.
func (e *hEstate) change(t *testing.T, c *zk.Conn, i, j, k int) uint32 {
	t.Helper()
	s := e.services[i]
	in := &s.insts[j]
	if in.weight == 100 {
		in.weight = uint32(40 + k%50)
	} else {
		in.weight = 100
	}
	p, data := e.znode(t, s, j)
	switch s.kind {
	case registry.KindDubboInterface:
		// The provider URL is the name: the old one goes and the new one comes in one transaction.
		if _, err := c.Multi(&zk.DeleteRequest{Path: in.path, Version: -1},
			&zk.CreateRequest{Path: p, Flags: 0, Acl: zk.WorldACL(zk.PermAll)}); err != nil {
			t.Fatalf("re-registering %s with weight %d: %v", s.name, in.weight, err)
		}
		in.path = p
	default:
		if _, err := c.Set(p, data, -1); err != nil {
			t.Fatalf("setting %s's weight to %d: %v", p, in.weight, err)
		}
	}
	return in.weight
}
