package e2e

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/e2e/nacostest"
	"github.com/mcp-bridge/mcp-bridge/e2e/servers"
	"github.com/mcp-bridge/mcp-bridge/e2e/xdsview"
)

// nacosPacingRegistrars is how many application clients register the Nacos row's estate, each
// its share of the services in parallel: Polaris holds every registration up to its batch
// waitTime (32 ms), so one client registering 1,000 services in turn takes ~25 s.
const nacosPacingRegistrars = 8

// nacosPacing is the Nacos row of TestIstiodPacedPushes: S Spring Cloud services of P instances
// each in the real Nacos-protocol server (DEFAULT_GROUP of the public namespace, the only group
// Polaris pushes changes of). A change sets instance 0's weight of a service to 2 or back to 1
// (EDS weight 200 / 100): a re-registration of the service's batch by the client that owns it, as
// an application re-registering with a new weight does. Weights rather than deregistrations keep
// every service above zero instances, where Polaris' quirks start (see nacos_test.go).
type nacosPacing struct {
	addr, cacheDir string
	clients        []naming_client.INamingClient // service s belongs to clients[s%len]
	heavy          map[int]bool                  // services whose instance 0 has weight 2
}

func startNacosPacing(t *testing.T) pacingRegistry {
	p := servers.StartPolaris(t)
	e := &nacosPacing{addr: p.NacosAddr(), cacheDir: filepath.Join(t.TempDir(), "nacos-sdk"), heavy: map[int]bool{}}
	for range nacosPacingRegistrars {
		e.clients = append(e.clients, nacostest.NewApp(t, e.addr, "public"))
	}
	// Polaris answers a batch registration before storing it (asynchronously, in batches), and
	// under this load it loses some instances of a service it creates at the same time: each
	// round re-registers the services it lists short, until it lists every instance.
	todo := make([]int, pacingServices)
	for s := range todo {
		todo[s] = s
	}
	for round := 0; len(todo) > 0; round++ {
		if round == 5 {
			t.Fatalf("Polaris still lists %d services short of their %d instances after %d registrations, e.g. %s: %s",
				len(todo), pacingPerService, round, e.service(todo[0]), nacosServerInstances(e.addr, e.service(todo[0])))
		}
		if round > 0 {
			t.Logf("Polaris lists %d services short of their instances after registration %d: registering them again", len(todo), round)
		}
		if err := e.each(todo, e.register); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // Polaris' cache refresh (1 s) behind its v1 list API
		var mu sync.Mutex
		var short []int
		if err := e.each(todo, func(s int) error {
			if strings.Count(nacosServerInstances(e.addr, e.service(s)), ":"+strconv.Itoa(nacosHTTPPort)+"(") != pacingPerService {
				mu.Lock()
				short = append(short, s)
				mu.Unlock()
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(short)
		todo = short
	}
	return e
}

// each calls f for the services, in parallel over the clients (service s on the goroutine of
// client s%len), and returns the first error of each goroutine.
func (e *nacosPacing) each(services []int, f func(s int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(e.clients))
	for c := range e.clients {
		wg.Go(func() {
			for _, s := range services {
				if s%len(e.clients) != c {
					continue
				}
				if err := f(s); err != nil {
					errs[c] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// config polls the service list often enough that the bridge lists every service soon after its
// start (Polaris lists new services about a second late), and keeps the SDK's cache in the test.
func (e *nacosPacing) config() string {
	return fmt.Sprintf(`  - name: %s
    type: nacos
    nacos:
      servers: [%q]
      flavor: polaris
      pollInterval: 2s
      cacheDir: %q
`, nacosRegistryName, e.addr, e.cacheDir)
}

func (e *nacosPacing) service(s int) string { return fmt.Sprintf("pace-svc-%04d", s) }
func (e *nacosPacing) ip(s, i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 100+i, s/250, 1+s%250)
}

func (e *nacosPacing) cluster(s int) string {
	return outboundCluster(e.service(s)+".default-group.public.nacos", nacosHTTPPort, "")
}

func (e *nacosPacing) want(s int) []xdsview.Endpoint {
	eps := make([]xdsview.Endpoint, pacingPerService)
	for i := range eps {
		eps[i] = xdsview.Endpoint{Address: fmt.Sprintf("%s:%d", e.ip(s, i), nacosHTTPPort), Weight: 100}
	}
	if e.heavy[s] {
		eps[0].Weight = 200
	}
	return eps
}

func (e *nacosPacing) change(t *testing.T, s int) {
	e.heavy[s] = !e.heavy[s]
	if err := e.register(s); err != nil {
		t.Fatal(err)
	}
}

// register (re-)registers service s's instances as one batch from the client owning s. A
// client's first request can race its own connection-time replay, and Polaris then refuses one
// of the two as "the same instance request": the call is tried again.
func (e *nacosPacing) register(s int) error {
	ins := make([]vo.RegisterInstanceParam, pacingPerService)
	for i := range ins {
		ins[i] = nacosSpringInstance(e.service(s), e.ip(s, i), nacosHTTPPort, 1, false)
	}
	if e.heavy[s] {
		ins[0].Weight = 2
	}
	c := e.clients[s%len(e.clients)]
	var ok bool
	var err error
	for range 5 {
		if ok, err = c.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: e.service(s), GroupName: "DEFAULT_GROUP", Instances: ins}); err == nil && ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("the server answered not registered")
	}
	return fmt.Errorf("registering the %d instances of %s: ok=%v: %w", len(ins), e.service(s), ok, err)
}
