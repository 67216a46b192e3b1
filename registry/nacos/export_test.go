package nacos

import (
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// What the external tests (package nacos_test, which run the adapter inside the real pipeline
// package: an in-package test cannot import it, as it imports this package) need of the inside.

// ShortConfig is testConfig: short intervals, Polaris, no periodic re-read.
func ShortConfig(t testing.TB, addr string) Config { return testConfig(t, addr) }

// NewWatchedAdapter is New whose SDK clients tell w when they deliver a service's instances.
func NewWatchedAdapter(cfg Config, opts registry.Options, w *PushWatch) (*Adapter, error) {
	return newAdapter(cfg, opts, watchFactory{&sdkFactory{cfg: cfg.WithDefaults(), cacheDir: cfg.CacheDir}, w})
}

// PushWatch records when the SDK delivered each service's instances to the adapter.
type PushWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func NewPushWatch() *PushWatch { return &PushWatch{seen: map[string]time.Time{}} }

// At is when the SDK last delivered the service's instances, zero if never.
func (w *PushWatch) At(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[name]
}

type watchFactory struct {
	clientFactory
	w *PushWatch
}

func (f watchFactory) naming(ns string) (namingClient, error) {
	c, err := f.clientFactory.naming(ns)
	if err != nil {
		return nil, err
	}
	return &watchNaming{namingClient: c, w: f.w, params: map[*vo.SubscribeParam]*vo.SubscribeParam{}}, nil
}

// watchNaming timestamps callbacks; it keeps the wrapped params so Unsubscribe finds them.
type watchNaming struct {
	namingClient
	w      *PushWatch
	mu     sync.Mutex
	params map[*vo.SubscribeParam]*vo.SubscribeParam
}

func (c *watchNaming) inner(p *vo.SubscribeParam) *vo.SubscribeParam {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.params[p]; ok {
		return q
	}
	q := *p
	q.SubscribeCallback = func(ins []model.Instance, err error) {
		c.w.mu.Lock()
		c.w.seen[p.ServiceName] = time.Now()
		c.w.mu.Unlock()
		p.SubscribeCallback(ins, err)
	}
	c.params[p] = &q
	return &q
}

func (c *watchNaming) Subscribe(p *vo.SubscribeParam) error {
	return c.namingClient.Subscribe(c.inner(p))
}

func (c *watchNaming) Unsubscribe(p *vo.SubscribeParam) error {
	return c.namingClient.Unsubscribe(c.inner(p))
}
