// Package consul watches a HashiCorp Consul catalog with blocking queries: the service list of
// each watched datacenter and the health of each selected service. Spring Cloud Consul services
// become application services; Dubbo 2.7 providers (service named after the interface, URL in
// Meta "url") and Dubbo 3 applications are mapped through registry/dubbo, so they get the same
// hosts as from ZooKeeper and Nacos.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Query kinds, as /debug/registries names them.
const (
	queryCatalog = "catalog/services"
	queryHealth  = "health/service"
	queryLeader  = "status/leader" // the liveness probe (probe.go)
)

// datacenterInterval is how often the datacenter list is re-read with datacenters ["*"]: the
// list cannot be watched with a blocking query.
const datacenterInterval = time.Minute

// Adapter watches one Consul cluster.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	include []*regexp.Regexp
	exclude []*regexp.Regexp
	conv    converter

	mu      sync.Mutex // guards what Describe reads
	watches map[wkey]*watch
	tr      *transport
	failErr string
	dcs     []string
	dcErrs  map[string]string // datacenters down while others answer, with their error
}

// wkey names a watched query.
type wkey struct{ kind, dc, service string }

// New builds an adapter from a defaulted, valid configuration.
func New(cfg Config, opts registry.Options) (*Adapter, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{cfg: cfg, log: log, conv: converter{cfg: cfg}, watches: map[wkey]*watch{}}
	for _, p := range cfg.Include {
		re, err := regexp.Compile(anchor(p))
		if err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
		a.include = append(a.include, re)
	}
	for _, p := range cfg.Exclude {
		re, err := regexp.Compile(anchor(p))
		if err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
		a.exclude = append(a.exclude, re)
	}
	if opts.Metrics != nil {
		m, err := newMetrics(opts.Metrics)
		if err != nil {
			return nil, fmt.Errorf("consul metrics: %w", err)
		}
		a.m = m
	} else {
		a.m, _ = newMetrics(nopRegisterer{})
	}
	return a, nil
}

// selected applies include, exclude and tags to a service of the catalog. Consul's own "consul"
// service (its servers' RPC port) is left out unless an include pattern names it.
func (a *Adapter) selected(name string, tags []string) bool {
	matches := func(res []*regexp.Regexp) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(name) })
	}
	if len(a.include) > 0 && !matches(a.include) {
		return false
	}
	if name == "consul" && len(a.include) == 0 {
		return false
	}
	return !matches(a.exclude) && hasTags(tags, a.cfg.Tags)
}

// event is what a watch delivers to the adapter's loop.
type event struct {
	key      wkey
	index    uint64
	services map[string][]string // catalog/services
	entries  []*api.ServiceEntry // health/service
	dcs      []string            // the datacenter list
	err      error
}

// Run watches the catalog and reports to sink until ctx is cancelled.
func (a *Adapter) Run(ctx context.Context, sink registry.Sink) error {
	client, tr, err := newClient(a.cfg)
	if err != nil {
		return err
	}
	tr.count = a.m.requests.Inc
	a.mu.Lock()
	a.tr = tr
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &loop{a: a, sink: sink, client: client, events: make(chan event, 256), state: map[wkey]*watchState{}}
	defer l.stopAll()
	if err := l.readToken(ctx); err != nil {
		return nil // cancelled
	}
	go l.probe(ctx)
	if err := l.startDatacenters(ctx); err != nil {
		return nil // cancelled
	}
	return l.run(ctx)
}

// readToken reads the ACL token, reporting the registry failed (and retrying) while its source
// cannot be read.
func (l *loop) readToken(ctx context.Context) error {
	for {
		tok, err := l.a.cfg.Token.Read()
		if err == nil {
			l.a.tr.token.Store(&tok)
			return nil
		}
		l.fail(fmt.Errorf("consul.token (%s): %w", l.a.cfg.Token, err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// startDatacenters starts the service-list watch of each configured datacenter, of the agent's
// own when none is configured (asked from the agent), or of every datacenter with ["*"].
func (l *loop) startDatacenters(ctx context.Context) error {
	dcs := l.a.cfg.Datacenters
	switch {
	case len(dcs) == 1 && dcs[0] == AllDatacenters:
		go l.pollDatacenters(ctx)
		return nil
	case len(dcs) == 0:
		for {
			self, err := l.client.Agent().Self()
			if err == nil {
				dc, _ := self["Config"]["Datacenter"].(string)
				if dc != "" {
					dcs = []string{dc}
					break
				}
				err = errors.New("agent/self names no datacenter")
			}
			l.fail(describeError(err, "reading the agent's datacenter (GET /v1/agent/self)", "agent:read", l.a.cfg.Token))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	l.setDatacenters(ctx, dcs)
	return nil
}

func (l *loop) pollDatacenters(ctx context.Context) {
	for {
		dcs, err := l.client.Catalog().Datacenters()
		if err != nil {
			err = describeError(err, "listing datacenters (GET /v1/catalog/datacenters)", "none (any token)", l.a.cfg.Token)
		}
		select {
		case l.events <- event{key: wkey{kind: "catalog/datacenters"}, dcs: dcs, err: err}:
		case <-ctx.Done():
			return
		}
		wait := datacenterInterval
		if err != nil {
			wait = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// startWatch starts a blocking query.
func (l *loop) startWatch(ctx context.Context, k wkey) {
	wctx, cancel := context.WithCancel(ctx)
	w := &watch{kind: k.kind, dc: k.dc, service: k.service, cancel: cancel, done: make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(l.a.cfg.QueryRate), l.a.cfg.QueryBurst), onReset: l.a.m.indexResets.Inc}
	l.a.mu.Lock()
	l.a.watches[k] = w
	l.a.m.watches.Set(float64(len(l.a.watches)))
	l.a.mu.Unlock()
	l.state[k] = &watchState{}
	deliver := func(ctx context.Context, e event) {
		select {
		case l.events <- e:
		case <-ctx.Done():
		}
	}
	var fetch fetchFunc
	switch k.kind {
	case queryCatalog:
		fetch = func(ctx context.Context, index uint64) (uint64, error) {
			q := l.query(ctx, k.dc, index)
			services, meta, err := l.client.Catalog().Services(q)
			if err != nil {
				return 0, l.wrap(err, fmt.Sprintf("watching the service list of datacenter %s (GET /v1/catalog/services)", k.dc), "service:read on the services to bridge")
			}
			deliver(ctx, event{key: k, index: meta.LastIndex, services: services})
			return meta.LastIndex, nil
		}
	case queryHealth:
		fetch = func(ctx context.Context, index uint64) (uint64, error) {
			q := l.query(ctx, k.dc, index)
			entries, meta, err := l.client.Health().Service(k.service, "", false, q)
			if err != nil {
				return 0, l.wrap(err, fmt.Sprintf("watching service %s in datacenter %s (GET /v1/health/service/%s)", k.service, k.dc, k.service),
					fmt.Sprintf("service:read on %q and node:read on its nodes", k.service))
			}
			deliver(ctx, event{key: k, index: meta.LastIndex, entries: entries})
			return meta.LastIndex, nil
		}
	}
	go w.run(wctx, fetch, func(err error) { deliver(wctx, event{key: k, err: err}) })
}

func (l *loop) query(ctx context.Context, dc string, index uint64) *api.QueryOptions {
	q := &api.QueryOptions{Datacenter: dc, WaitIndex: index, WaitTime: l.a.cfg.Wait}
	return q.WithContext(ctx)
}

// wrap describes an error; an ACL refusal also re-reads the token, so a rotated token file is
// picked up without a restart.
func (l *loop) wrap(err error, what, permission string) error {
	err = describeError(err, what, permission, l.a.cfg.Token)
	if errors.Is(err, errACL) {
		if tok, rerr := l.a.cfg.Token.Read(); rerr == nil {
			l.a.tr.token.Store(&tok)
		}
	}
	return err
}

// stopWatch stops a blocking query and forgets it.
func (l *loop) stopWatch(k wkey) {
	l.a.mu.Lock()
	w := l.a.watches[k]
	delete(l.a.watches, k)
	l.a.m.watches.Set(float64(len(l.a.watches)))
	l.a.mu.Unlock()
	delete(l.state, k)
	if w != nil {
		w.cancel()
	}
}

func (l *loop) stopAll() {
	l.a.mu.Lock()
	ws := make([]*watch, 0, len(l.a.watches))
	for k, w := range l.a.watches {
		w.cancel()
		ws = append(ws, w)
		delete(l.a.watches, k)
	}
	l.a.m.watches.Set(0)
	l.a.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
}

// Describe reports the adapter's state for /debug/registries: the address in use, the
// datacenters, and per watched query its index, last change and request rate. Never the token.
func (a *Adapter) Describe() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]any{"datacenters": a.dcs, "token": a.cfg.Token.String()}
	if a.tr != nil {
		out["address"] = a.tr.current()
		out["requests"] = a.tr.requests.Load()
	}
	if a.failErr != "" {
		out["error"] = a.failErr
	}
	if down := a.downDatacenters(); down != nil {
		out["datacentersDown"] = down
	}
	keys := make([]wkey, 0, len(a.watches))
	for k := range a.watches {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y wkey) int {
		if x.dc != y.dc {
			return cmpString(x.dc, y.dc)
		}
		if x.kind != y.kind {
			return cmpString(x.kind, y.kind)
		}
		return cmpString(x.service, y.service)
	})
	queries := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		queries = append(queries, a.watches[k].status())
	}
	out["queries"] = queries
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
