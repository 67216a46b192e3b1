package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
	"github.com/mcp-bridge/mcp-bridge/e2e/zktest"
)

// pacingEstate is S Dubbo 2 interfaces with P providers each in ZooKeeper.
type pacingEstate struct {
	services, perService int
	present              map[[2]int]bool // (service, instance) registered
}

func (e *pacingEstate) iface(s int) string { return fmt.Sprintf("com.example.pace.Svc%04d", s) }
func (e *pacingEstate) host(s int) string  { return strings.ToLower(e.iface(s)) }
func (e *pacingEstate) ip(s, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+i, s/250, 1+s%250)
}
func (e *pacingEstate) node(s, i int) string {
	return zktest.ProviderPath("/dubbo", e.iface(s), zkDubbo2URL(e.iface(s), e.ip(s, i)))
}

// want is the expected EDS of service s's dubbo cluster.
func (e *pacingEstate) want(s int) []xdsview.Endpoint {
	eps := []xdsview.Endpoint{}
	for i := range e.perService {
		if e.present[[2]int{s, i}] {
			eps = append(eps, xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", e.ip(s, i), zkDubboPort), Weight: zkDefaultWeight})
		}
	}
	return eps
}

// toggle registers or deregisters instance 0 of service s. Provider nodes are persistent so one
// admin session can do both; the node's path (with its timestamp) is remembered.
func (e *pacingEstate) toggle(t *testing.T, c *zk.Conn, paths map[[2]int]string, s int) {
	k := [2]int{s, 0}
	if e.present[k] {
		zktest.Delete(t, c, paths[k])
	} else {
		paths[k] = e.node(s, 0)
		zktest.Create(t, c, paths[k], nil, false)
	}
	e.present[k] = !e.present[k]
}
