package consul

import (
	"context"
	"reflect"
	"sort"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// loop is one Run: the watches' results and what has been sent to the sink. Only the loop's
// goroutine touches it (Describe reads the Adapter's own guarded fields).
type loop struct {
	a      *Adapter
	sink   registry.Sink
	client *api.Client
	events chan event
	state  map[wkey]*watchState
	dcs    []string

	// dcDown holds the datacenters whose queries fail while another datacenter answers (the
	// agent is up, a remote datacenter's servers are not), with when that began: their
	// last-known services stay served and the rest of the registry goes on.
	dcDown map[string]time.Time

	synced     bool
	failed     bool
	failedAt   time.Time
	lastFail   time.Time
	failMsg    string
	delayDone  bool
	delayTimer *time.Timer
	probeDown  bool // the last liveness probe failed
}

// watchState is the last result of one watch.
type watchState struct {
	have     bool
	index    uint64
	okAt     time.Time
	errAt    time.Time
	stale    bool                               // an error came since the last answer: the next answer is read whole
	catalog  map[string][]string                // catalog/services
	services map[registry.Key]*registry.Service // health/service, converted
	rejects  map[string]rejection
}

func (l *loop) run(ctx context.Context) error {
	timer := make(<-chan time.Time)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-l.events:
			l.handle(ctx, e)
		case <-timer:
			l.delayDone = true
			timer = make(<-chan time.Time)
		}
		// Recovery: once every watch has answered since the failure and the delay has passed.
		if l.failed && l.synced && l.allOKSince(l.failedAt) {
			switch {
			case l.a.cfg.RecoveryDelay <= 0 || l.delayDone:
				l.replace()
			case l.delayTimer == nil:
				l.delayTimer = time.NewTimer(l.a.cfg.RecoveryDelay)
				timer = l.delayTimer.C
			}
		}
		if !l.synced && l.allOKSince(time.Time{}) && len(l.dcs) > 0 {
			l.replace()
		}
	}
}

func (l *loop) handle(ctx context.Context, e event) {
	if e.key.kind == queryLeader {
		l.probed(ctx, e.err)
		return
	}
	if e.err != nil {
		if st, ok := l.state[e.key]; ok {
			st.errAt, st.stale = time.Now(), true
		}
		if e.key.dc != "" && serverError(e.err) && l.othersUp(e.key.dc) {
			l.datacenterDown(e.key.dc, e.err)
			return
		}
		l.fail(e.err)
		return
	}
	if e.key.kind == "catalog/datacenters" {
		l.setDatacenters(ctx, e.dcs)
		return
	}
	st, ok := l.state[e.key]
	if !ok {
		return // a stopped watch's last answer
	}
	st.okAt = time.Now()
	defer l.datacenterUp(e.key.dc)
	if st.have && !st.stale && st.index == e.index {
		return // the wait ran out: nothing changed
	}
	st.have, st.stale, st.index = true, false, e.index
	switch e.key.kind {
	case queryCatalog:
		st.catalog = e.services
		l.selectServices(ctx, e.key.dc, e.services)
	case queryHealth:
		services, rejects := l.a.conv.convert(e.key.dc, e.key.service, e.entries)
		l.report(st, rejects)
		next := make(map[registry.Key]*registry.Service, len(services))
		for _, s := range services {
			if err := s.Validate(); err != nil {
				l.sink.Reject(e.key.dc+"/"+e.key.service, "bad-service", err)
				continue
			}
			next[s.Key()] = s
		}
		var upsert []*registry.Service
		var del []registry.Key
		for k, s := range next {
			if old, ok := st.services[k]; !ok || !reflect.DeepEqual(old, s) {
				upsert = append(upsert, s)
			}
		}
		for k := range st.services {
			if _, ok := next[k]; !ok {
				del = append(del, k)
			}
		}
		st.services = next
		l.countInstances()
		if l.synced && !l.failed {
			if len(upsert) > 0 {
				sortServices(upsert)
				l.sink.Upsert(upsert)
			}
			if len(del) > 0 {
				l.sink.Delete(del)
			}
		}
	}
}

// setDatacenters starts the service-list watches of new datacenters and stops those of
// datacenters that are gone (their services go with a Delete).
func (l *loop) setDatacenters(ctx context.Context, dcs []string) {
	want := map[string]bool{}
	for _, dc := range dcs {
		want[dc] = true
		if _, ok := l.state[wkey{kind: queryCatalog, dc: dc}]; !ok {
			l.startWatch(ctx, wkey{kind: queryCatalog, dc: dc})
		}
	}
	for _, dc := range l.dcs {
		if !want[dc] {
			l.selectServices(ctx, dc, nil)
			l.stopWatch(wkey{kind: queryCatalog, dc: dc})
			if _, down := l.dcDown[dc]; down {
				delete(l.dcDown, dc)
				l.publishDown(dc, "")
			}
		}
	}
	l.dcs = append([]string(nil), dcs...)
	sort.Strings(l.dcs)
	l.a.mu.Lock()
	l.a.dcs = l.dcs
	l.a.mu.Unlock()
}

// selectServices starts a health watch for each newly selected service of a datacenter and
// stops those of services that are gone, deleting them.
func (l *loop) selectServices(ctx context.Context, dc string, catalog map[string][]string) {
	for name, tags := range catalog {
		k := wkey{kind: queryHealth, dc: dc, service: name}
		if _, ok := l.state[k]; !ok && l.a.selected(name, tags) {
			l.startWatch(ctx, k)
		}
	}
	var del []registry.Key
	for k, st := range l.state {
		if k.kind != queryHealth || k.dc != dc {
			continue
		}
		if tags, ok := catalog[k.service]; ok && l.a.selected(k.service, tags) {
			continue
		}
		for key := range st.services {
			del = append(del, key)
		}
		l.report(st, nil)
		l.stopWatch(k)
	}
	l.countInstances()
	if l.synced && !l.failed && len(del) > 0 {
		l.sink.Delete(del)
	}
}

// report sends the rejections of a watch that are new and withdraws those that are gone.
func (l *loop) report(st *watchState, rejects map[string]rejection) {
	for where, r := range rejects {
		if old, ok := st.rejects[where]; !ok || old.err.Error() != r.err.Error() {
			l.sink.Reject(where, r.reason, r.err)
			l.a.m.rejected.WithLabelValues(r.reason).Inc()
		}
	}
	for where := range st.rejects {
		if _, ok := rejects[where]; !ok {
			l.sink.Accept(where)
		}
	}
	st.rejects = rejects
}

// allOKSince reports whether every watch has answered since t, leaving out the datacenters
// that are down: the first sync and the end of a failure do not wait for them (their services
// are last-known, or not known yet and added when they answer).
func (l *loop) allOKSince(t time.Time) bool {
	for k, st := range l.state {
		if _, down := l.dcDown[k.dc]; down {
			continue
		}
		if !st.have || !st.okAt.After(t) || !st.okAt.After(st.errAt) {
			return false
		}
	}
	return true
}

// replace sends the full state: at the first sync and when a failure ends.
func (l *loop) replace() {
	var all []*registry.Service
	for _, st := range l.state {
		for _, s := range st.services {
			all = append(all, s)
		}
	}
	sortServices(all)
	l.sink.Replace(all)
	l.synced, l.failed, l.delayDone = true, false, false
	if l.delayTimer != nil {
		l.delayTimer.Stop()
		l.delayTimer = nil
	}
	l.a.m.up.Set(1)
	l.a.mu.Lock()
	l.a.failErr = ""
	l.a.mu.Unlock()
}

// fail reports the registry failed: the merge layer holds the last-known state until the next
// Replace. Repeated errors while failed are passed on at most once a second (a thousand health
// watches fail at once when the agent goes away).
func (l *loop) fail(err error) {
	now := time.Now()
	if !l.failed {
		l.failed, l.failedAt, l.delayDone = true, now, false
		if l.delayTimer != nil {
			l.delayTimer.Stop()
			l.delayTimer = nil
		}
	} else if err.Error() == l.failMsg || now.Sub(l.lastFail) < time.Second {
		return
	}
	l.failedAt = now
	l.lastFail, l.failMsg = now, err.Error()
	l.a.m.up.Set(0)
	l.a.mu.Lock()
	l.a.failErr = err.Error()
	l.a.mu.Unlock()
	l.a.log.Warn("consul registry failed; serving last-known state", "err", err)
	l.sink.Fail(err)
}

func (l *loop) countInstances() {
	n := 0
	for _, st := range l.state {
		for _, s := range st.services {
			n += len(s.Instances)
		}
	}
	l.a.m.instances.Set(float64(n))
}

func sortServices(s []*registry.Service) {
	sort.Slice(s, func(i, j int) bool { return s[i].Key().String() < s[j].Key().String() })
}

// nopRegisterer accepts collectors without exposing them (an adapter built without metrics).
type nopRegisterer struct{}

func (nopRegisterer) Register(prometheus.Collector) error  { return nil }
func (nopRegisterer) MustRegister(...prometheus.Collector) {}
func (nopRegisterer) Unregister(prometheus.Collector) bool { return true }
