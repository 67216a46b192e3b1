package nacos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// subKey identifies a Nacos service: namespace id ("public" for the default), group, name.
type subKey struct{ ns, group, name string }

// where names the service for Reject/Accept and logs.
func (k subKey) where() string { return "nacos:" + k.ns + "/" + k.group + "/" + k.name }

// subscription is one subscribed Nacos service.
type subscription struct {
	key   subKey
	role  role
	dubbo dubbo.ServiceKey // providers: and consumers: services
	param *vo.SubscribeParam

	// Guarded by Adapter.mu: written by SDK callbacks.
	active    bool
	instances []model.Instance
	received  bool      // a push (or the subscription's own answer) delivered instances
	pushedAt  time.Time // when the last push arrived

	// Owned by the Run goroutine.
	subscribed bool // Subscribe succeeded and the subscription stands
	stale      bool // a Subscribe failed after registering the callback: clean up before retrying
}

// reconcile subscribes to the wanted services not yet subscribed and drops the others once
// they have been missing from missingPolls lists in a row: a list that skips a service once
// (pages shifting while services come and go) must not withdraw it from the mesh.
func (a *Adapter) reconcile(ctx context.Context, want map[subKey]bool) {
	for k, s := range a.st.subs {
		if want[k] {
			delete(a.missing, k)
			continue
		}
		a.missing[k]++
		if a.missing[k] >= missingPolls || !slices.Contains(a.namespaces, k.ns) {
			delete(a.missing, k)
			a.drop(s)
		}
	}
	var todo []*subscription
	for k := range want {
		s := a.st.subs[k]
		if s == nil {
			s = a.newSubscription(k)
			a.st.add(s)
		}
		if !s.subscribed {
			todo = append(todo, s)
		}
	}
	a.subscribeAll(ctx, todo, false)
	// Namespaces no longer selected: nothing is subscribed there any more.
	keep := map[string]bool{}
	for _, ns := range a.namespaces {
		keep[ns] = true
	}
	for ns, c := range a.clients {
		if !keep[ns] {
			c.CloseClient()
			delete(a.clients, ns)
		}
	}
	for ns, c := range a.configs {
		if !keep[ns] {
			c.CloseClient()
			delete(a.configs, ns)
		}
	}
	a.updateCounts()
}

// missingPolls is how many successive lists must miss a service before it is dropped.
const missingPolls = 2

func (a *Adapter) newSubscription(k subKey) *subscription {
	r, dk := parseName(k.name)
	s := &subscription{key: k, role: r, dubbo: dk, active: true}
	s.param = &vo.SubscribeParam{
		ServiceName: k.name,
		GroupName:   k.group,
		SubscribeCallback: func(services []model.Instance, err error) {
			a.onPush(s, services, err)
		},
	}
	return s
}

// onPush runs on SDK goroutines: it only records the instances and wakes the loop.
func (a *Adapter) onPush(s *subscription, instances []model.Instance, err error) {
	if err != nil {
		a.log.Warn("Nacos push reported an error", "service", s.key.where(), "error", err)
		return
	}
	// The SDK keeps and later sorts the slice it passes: keep a copy.
	instances = append([]model.Instance(nil), instances...)
	a.mu.Lock()
	if !s.active {
		a.mu.Unlock()
		return
	}
	s.instances, s.received, s.pushedAt = instances, true, time.Now()
	a.dirty[s] = struct{}{}
	a.mu.Unlock()
	a.met.pushes.Inc()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// drop unsubscribes a service that left the selection or the registry.
func (a *Adapter) drop(s *subscription) {
	a.mu.Lock()
	s.active = false
	delete(a.dirty, s)
	a.mu.Unlock()
	if s.subscribed || s.stale {
		if c, ok := a.clients[s.key.ns]; ok {
			if err := c.Unsubscribe(s.param); err != nil {
				a.log.Debug("unsubscribing failed", "service", s.key.where(), "error", err)
			}
		}
	}
	s.subscribed, s.stale = false, false
	a.st.remove(s)
}

// subscribeAll subscribes services with bounded concurrency. With again, standing subscriptions
// are dropped and made anew, which makes the SDK read the service from the server instead of
// its cache (it has no other way to force a read).
func (a *Adapter) subscribeAll(ctx context.Context, subs []*subscription, again bool) {
	if len(subs) == 0 {
		return
	}
	type result struct {
		s   *subscription
		err error
	}
	jobs := make(chan *subscription)
	results := make(chan result, len(subs))
	var wg sync.WaitGroup
	for range min(a.cfg.SubscribeConcurrency, len(subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range jobs {
				results <- result{s, a.subscribe(s, again)}
			}
		}()
	}
	// Fields of s other than those under a.mu are only read by the workers until wg.Wait.
	go func() {
		defer close(jobs)
		for _, s := range subs {
			select {
			case jobs <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(results)
	var errs []error
	for r := range results {
		r.s.subscribed = r.err == nil
		r.s.stale = r.err != nil
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.s.key.where(), r.err))
		}
	}
	if len(errs) > 0 {
		a.met.subscribeErrors.Add(float64(len(errs)))
		a.log.Warn("subscribing to Nacos services failed; retrying at the next poll",
			"failed", len(errs), "of", len(subs), "first", errs[0])
	}
}

// subscribe runs on a worker: it touches only the SDK and fields written before the job started.
func (a *Adapter) subscribe(s *subscription, again bool) error {
	c, ok := a.clients[s.key.ns]
	if !ok {
		return fmt.Errorf("no client for namespace %q", s.key.ns)
	}
	if again || s.stale {
		// Unsubscribe first: it removes the callback and the cached answer, so Subscribe reads
		// the server and the callback is registered once.
		_ = c.Unsubscribe(s.param)
	}
	return c.Subscribe(s.param)
}

// resyncAll reads every subscribed service again from the server.
func (a *Adapter) resyncAll(ctx context.Context) {
	start := time.Now()
	subs := make([]*subscription, 0, len(a.st.subs))
	for _, s := range a.st.subs {
		subs = append(subs, s)
	}
	a.subscribeAll(ctx, subs, true)
	a.met.resyncs.Inc()
	a.setStatus(func(s *status) { s.LastResync = time.Now() })
	a.log.Debug("resynced every Nacos subscription", "services", len(subs), "took", time.Since(start))
	a.updateCounts()
}

func (a *Adapter) updateCounts() {
	subs, unsub, instances := 0, 0, 0
	a.mu.Lock()
	for _, s := range a.st.subs {
		subs++
		if !s.subscribed {
			unsub++
		}
		instances += len(s.instances)
	}
	a.mu.Unlock()
	a.met.subscriptions.Set(float64(subs))
	a.met.instances.Set(float64(instances))
	emitted := a.st.emittedCount()
	a.setStatus(func(s *status) {
		s.Subscriptions, s.Unsubscribed, s.Instances, s.Services, s.Synced = subs, unsub, instances, emitted, a.synced
		s.Mappings = len(a.st.mapping)
	})
}

// poll lists the services and brings the subscriptions in line, then sends what changed (the
// first time: everything, with Replace). While the adapter waits to recover from a failure it
// only checks that the server answers. It reports whether the server answered.
func (a *Adapter) poll(ctx context.Context) bool {
	want, err := a.list(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.fail(err)
		}
		return false
	}
	if a.failed && a.synced {
		return true // recover() re-reads everything
	}
	a.reconcile(ctx, want)
	a.rereadUnpushed(ctx)
	a.refreshMappings(ctx)
	if !a.synced {
		a.failed, a.failMsg = false, ""
		a.replace(ctx)
		a.synced = true
		a.updateCounts()
		a.log.Info("Nacos synced", "namespaces", len(a.namespaces), "services", a.st.emittedCount())
		return true
	}
	a.flush(ctx, true)
	return true
}

// rereadUnpushed reads again, at every poll, the services whose changes the server never pushes:
// Polaris pushes changes of DEFAULT_GROUP services only.
func (a *Adapter) rereadUnpushed(ctx context.Context) {
	if a.cfg.Flavor != FlavorPolaris || !a.synced {
		return // the first sync has just read everything
	}
	var subs []*subscription
	for _, s := range a.st.subs {
		if s.key.group != DefaultGroup && s.subscribed {
			subs = append(subs, s)
		}
	}
	a.subscribeAll(ctx, subs, true)
}
