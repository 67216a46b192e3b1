package nacos

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// fakeNaming stands in for the SDK's naming client talking to a real Alibaba Nacos 2.x server,
// for the behaviours the Polaris server here does not reproduce:
//   - service lists answer grouped names ("GROUP@@name") with the group's own count;
//   - weights are floats (Polaris truncates 0.5 to 0);
//   - a service that drops to zero instances is pushed, as an empty list;
//   - changes of services in every group are pushed (Polaris pushes DEFAULT_GROUP only).
//
// Like the SDK, Subscribe answers through the callback before it returns.
type fakeNaming struct {
	mu       sync.Mutex
	services map[string]map[string][]model.Instance // group -> name -> instances
	subs     map[string]*vo.SubscribeParam          // "group@@name"
	down     bool
	lists    int // GetAllServicesInfo calls
	subCalls int // Subscribe calls
	closed   bool
}

func newFakeNaming() *fakeNaming {
	return &fakeNaming{services: map[string]map[string][]model.Instance{}, subs: map[string]*vo.SubscribeParam{}}
}

var errDown = errors.New("client not connected, current status:UNHEALTHY")

func (f *fakeNaming) GetAllServicesInfo(p vo.GetAllServiceInfoParam) (model.ServiceList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.down {
		return model.ServiceList{}, errDown
	}
	var names []string
	for n := range f.services[p.GroupName] {
		names = append(names, p.GroupName+"@@"+n)
	}
	sort.Strings(names)
	from := min(int(p.PageNo-1)*int(p.PageSize), len(names))
	to := min(from+int(p.PageSize), len(names))
	return model.ServiceList{Count: int64(len(names)), Doms: names[from:to]}, nil
}

func (f *fakeNaming) Subscribe(p *vo.SubscribeParam) error {
	f.mu.Lock()
	f.subCalls++
	if f.down {
		f.mu.Unlock()
		return errDown
	}
	f.subs[p.GroupName+"@@"+p.ServiceName] = p
	ins := append([]model.Instance(nil), f.services[p.GroupName][p.ServiceName]...)
	f.mu.Unlock()
	p.SubscribeCallback(ins, nil)
	return nil
}

func (f *fakeNaming) Unsubscribe(p *vo.SubscribeParam) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, p.GroupName+"@@"+p.ServiceName)
	if f.down {
		return errDown
	}
	return nil
}

func (f *fakeNaming) CloseClient() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

// set registers (or replaces) a service's instances and pushes them to a subscriber.
func (f *fakeNaming) set(group, name string, ins ...model.Instance) {
	f.mu.Lock()
	if f.services[group] == nil {
		f.services[group] = map[string][]model.Instance{}
	}
	f.services[group][name] = ins
	p := f.subs[group+"@@"+name]
	down := f.down
	f.mu.Unlock()
	if p != nil && !down {
		p.SubscribeCallback(append([]model.Instance(nil), ins...), nil)
	}
}

// remove deletes a service (Nacos removes an empty service after a while).
func (f *fakeNaming) remove(group, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.services[group], name)
}

func (f *fakeNaming) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeNaming) subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// fakeFactory hands out one fakeNaming per namespace.
type fakeFactory struct {
	mu      sync.Mutex
	clients map[string]*fakeNaming
}

func newFakeFactory(namespaces ...string) *fakeFactory {
	f := &fakeFactory{clients: map[string]*fakeNaming{}}
	for _, ns := range namespaces {
		f.clients[ns] = newFakeNaming()
	}
	return f
}

func (f *fakeFactory) ns(ns string) *fakeNaming {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients[ns] == nil {
		f.clients[ns] = newFakeNaming()
	}
	return f.clients[ns]
}

func (f *fakeFactory) naming(ns string) (namingClient, error) { return f.ns(ns), nil }

func (f *fakeFactory) config(ns string) (configClient, error) {
	return nil, fmt.Errorf("no config client in this fake")
}

func inst(ip string, port uint64, weight float64, md map[string]string) model.Instance {
	return model.Instance{Ip: ip, Port: port, Weight: weight, Healthy: true, Enable: true, Ephemeral: true, ClusterName: defaultCluster, Metadata: md}
}
