package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// What a path is, by where it sits in the tree.
type nodeKind int

const (
	kindNone         nodeKind = iota
	kindDubboRoot             // /dubbo: children are interfaces
	kindInterface             // /dubbo/<iface>: children are categories
	kindCategory              // /dubbo/<iface>/providers|consumers|configurators|routers: children are URLs
	kindServicesRoot          // /services: children are applications
	kindApp                   // /services/<app>: children are instances
	kindInstance              // /services/<app>/<id>: data is a Curator instance
	kindMappingRoot           // /dubbo/mapping: children are interfaces
	kindMapping               // /dubbo/mapping/<iface>: data is a list of applications
	kindRuleRoot              // /dubbo/config/dubbo: children are governance rules (rules.go)
	kindRule                  // /dubbo/config/dubbo/<key><suffix>: data is a rule's YAML
)

func (k nodeKind) readsData() bool { return k == kindInstance || k == kindMapping || k == kindRule }

// Why a path is queued.
const (
	causeEvent  = 1 << iota // a watch fired: read again and set a new watch
	causeResync             // a full resync: read again; set a watch only if none is set
)

// pending is the set of paths to read, filled by the zk event callback and by the sync itself.
// The callback must never block, so it only takes this mutex.
type pending struct {
	mu      sync.Mutex
	paths   map[string]int // path -> causes
	watched map[string]bool
	session []zk.Event
	rewatch bool // the server lost our watches: read everything again, with watches
	wake    chan struct{}
}

// requestRewatch asks for every watch to be set again (go-zookeeper's SetWatches failed).
func (p *pending) requestRewatch() {
	p.mu.Lock()
	p.rewatch = true
	p.mu.Unlock()
	p.signal()
}

func (p *pending) takeRewatch() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rewatch
	p.rewatch = false
	return r
}

func newPending() *pending {
	return &pending{paths: make(map[string]int), watched: make(map[string]bool), wake: make(chan struct{}, 1)}
}

func (p *pending) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pending) add(path string, cause int) {
	p.mu.Lock()
	p.paths[path] |= cause
	if cause&causeEvent != 0 {
		// The watch fired: the server no longer holds it.
		delete(p.watched, path)
		delete(p.watched, "?"+path)
	}
	p.mu.Unlock()
	p.signal()
}

func (p *pending) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.paths
	p.paths = make(map[string]int)
	return out
}

func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.paths)
}

func (p *pending) isWatched(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.watched[path]
}

func (p *pending) setWatched(path string, on bool) {
	p.mu.Lock()
	if on {
		p.watched[path] = true
	} else {
		delete(p.watched, path)
	}
	p.mu.Unlock()
}

func (p *pending) watchCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watched)
}

// forgetWatches is for a lost session: the server dropped every watch.
func (p *pending) forgetWatches() {
	p.mu.Lock()
	p.watched = make(map[string]bool)
	p.mu.Unlock()
}

func (p *pending) pushSession(ev zk.Event) {
	p.mu.Lock()
	p.session = append(p.session, ev)
	p.mu.Unlock()
	p.signal()
}

func (p *pending) takeSession() []zk.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.session
	p.session = nil
	return out
}

// readResult is one read done concurrently, applied serially.
type readResult struct {
	path     string
	kind     nodeKind
	children []string
	data     []byte
	stat     *zk.Stat
	err      error
}

// drain reads and applies queued paths until none is left or the session is lost. Reads run
// ReadConcurrency at a time; results are applied in path order by this goroutine alone, and may
// queue more paths (new children), which the next round reads.
func (w *watcher) drain(ctx context.Context) error {
	for {
		batch := w.pend.take()
		if len(batch) == 0 {
			return nil
		}
		paths := make([]string, 0, len(batch))
		for p := range batch {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		results := make([]readResult, len(paths))
		sem := make(chan struct{}, w.a.cfg.ReadConcurrency)
		var wg sync.WaitGroup
		for i, p := range paths {
			kind := w.classify(p)
			results[i] = readResult{path: p, kind: kind}
			if kind == kindNone {
				continue
			}
			watch := batch[p]&causeEvent != 0 || !w.pend.isWatched(p)
			sem <- struct{}{}
			wg.Add(1)
			go func(r *readResult) {
				defer wg.Done()
				defer func() { <-sem }()
				if r.kind.readsData() {
					r.data, r.stat, r.err = w.conn.get(r.path, watch)
				} else {
					r.children, r.stat, r.err = w.conn.children(r.path, watch)
				}
				if r.err == nil && watch {
					w.pend.setWatched(r.path, true)
				}
			}(&results[i])
		}
		wg.Wait()
		var lost error
		for i := range results {
			r := &results[i]
			if r.kind == kindNone {
				continue
			}
			if r.err != nil && isConnErr(r.err) {
				// Keep what could not be read for when the session is back.
				w.pend.add(r.path, batch[r.path])
				lost = r.err
				continue
			}
			w.apply(r)
		}
		if lost != nil {
			return fmt.Errorf("reading the tree: %w", lost)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// apply folds one read into the tree.
func (w *watcher) apply(r *readResult) {
	if r.err != nil && !errors.Is(r.err, zk.ErrNoNode) {
		w.pend.setWatched(r.path, false)
		w.reject(r.path, "read-failed", fmt.Errorf("reading %s: %w", r.path, r.err))
		return
	}
	gone := errors.Is(r.err, zk.ErrNoNode)
	if gone {
		w.pend.setWatched(r.path, false)
	} else {
		w.accept(r.path)
	}
	switch r.kind {
	case kindDubboRoot:
		w.applyDubboRoot(r.path, r.children, gone)
	case kindInterface:
		w.applyInterface(r.path, r.children, gone)
	case kindCategory:
		w.applyCategory(r.path, r.children, gone)
	case kindServicesRoot:
		w.applyServicesRoot(r.path, r.children, gone)
	case kindApp:
		w.applyApp(r.path, r.children, gone)
	case kindInstance:
		w.applyInstance(r.path, r.data, r.stat, gone)
	case kindMappingRoot:
		w.applyMappingRoot(r.path, r.children, gone)
	case kindMapping:
		w.applyMapping(r.path, r.data, gone)
	case kindRuleRoot:
		w.applyRuleRoot(r.path, r.children, gone)
	case kindRule:
		w.applyRule(r.path, r.data, r.stat, gone)
	}
}

// watchRoot handles a root that does not exist (yet): an exists watch reports its creation.
// The watch is kept in the watched set under "?"+path, so resyncs do not stack more of them.
func (w *watcher) watchRoot(p string) {
	if w.pend.isWatched("?" + p) {
		return
	}
	ok, err := w.conn.existsW(p)
	if err == nil {
		w.pend.setWatched("?"+p, true)
	}
	switch {
	case err != nil && isConnErr(err):
		w.pend.add(p, causeEvent)
	case err != nil:
		w.reject(p, "read-failed", fmt.Errorf("watching %s for creation: %w", p, err))
	case ok:
		// Created meanwhile.
		w.pend.add(p, causeEvent)
	}
}

// classify says what a path is.
func (w *watcher) classify(p string) nodeKind {
	cfg := w.a.cfg
	parent := path.Dir(p)
	if cfg.ServicesRoot != "-" {
		switch {
		case p == cfg.ServicesRoot:
			return kindServicesRoot
		case parent == cfg.ServicesRoot:
			return kindApp
		case path.Dir(parent) == cfg.ServicesRoot:
			return kindInstance
		}
	}
	if cfg.MappingRoot != "-" {
		switch {
		case p == cfg.MappingRoot:
			return kindMappingRoot
		case parent == cfg.MappingRoot:
			return kindMapping
		}
	}
	if cfg.GovernanceRoot != "-" {
		// Before the Dubbo roots: the default /dubbo/config/dubbo is below the root /dubbo.
		switch {
		case p == cfg.GovernanceRoot:
			return kindRuleRoot
		case parent == cfg.GovernanceRoot:
			return kindRule
		}
	}
	if w.a.roots[p] {
		return kindDubboRoot
	}
	if w.a.roots[parent] {
		return kindInterface
	}
	if w.a.roots[path.Dir(parent)] && isCategory(path.Base(p)) {
		return kindCategory
	}
	return kindNone
}

// queueAll queues every node the tree knows, for a full resync.
func (w *watcher) queueAll() {
	for r := range w.a.roots {
		w.pend.add(r, causeResync)
	}
	for _, n := range w.ifaces {
		w.pend.add(n.path, causeResync)
		for c := range n.cats {
			w.pend.add(n.path+"/"+c, causeResync)
		}
	}
	if w.a.cfg.ServicesRoot != "-" {
		w.pend.add(w.a.cfg.ServicesRoot, causeResync)
		for _, app := range w.apps {
			w.pend.add(app.path, causeResync)
			for id := range app.instances {
				w.pend.add(app.path+"/"+id, causeResync)
			}
		}
	}
	if w.a.cfg.MappingRoot != "-" {
		w.pend.add(w.a.cfg.MappingRoot, causeResync)
		for iface := range w.mappingNodes {
			w.pend.add(w.a.cfg.MappingRoot+"/"+iface, causeResync)
		}
	}
	if w.a.cfg.GovernanceRoot != "-" {
		w.pend.add(w.a.cfg.GovernanceRoot, causeResync)
		for name := range w.ruleNodes {
			w.pend.add(path.Join(w.a.cfg.GovernanceRoot, name), causeResync)
		}
	}
}

// emit rebuilds the services of every touched interface and application and sends the
// differences, or everything with Replace when a full state is owed.
func (w *watcher) emit(replace bool) {
	ifaces, apps := w.expandTouched()
	var upserts []*registry.Service
	var deletes []registry.Key
	diff := func(owner string, want map[registry.Key]*registry.Service) {
		have := w.emitted[owner]
		for k, s := range want {
			if old, ok := have[k]; !ok || !sameService(old, s) {
				upserts = append(upserts, s)
			} else {
				want[k] = old
			}
		}
		for k := range have {
			if _, ok := want[k]; !ok {
				deletes = append(deletes, k)
			}
		}
		if len(want) == 0 {
			delete(w.emitted, owner)
		} else {
			w.emitted[owner] = want
		}
	}
	for name := range ifaces {
		diff("i:"+name, w.buildInterface(name))
	}
	for name := range apps {
		diff("a:"+name, w.buildApp(name))
	}
	w.publishStatus()
	w.emitRules(replace)
	if replace {
		all := make([]*registry.Service, 0, len(w.emitted)*2)
		for _, m := range w.emitted {
			for _, s := range m {
				all = append(all, s.Clone())
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].Key().String() < all[j].Key().String() })
		w.sink.Replace(all)
		return
	}
	if len(upserts) > 0 {
		sort.Slice(upserts, func(i, j int) bool { return upserts[i].Key().String() < upserts[j].Key().String() })
		out := make([]*registry.Service, len(upserts))
		for i, s := range upserts {
			out[i] = s.Clone()
		}
		w.sink.Upsert(out)
	}
	if len(deletes) > 0 {
		sort.Slice(deletes, func(i, j int) bool { return deletes[i].String() < deletes[j].String() })
		w.sink.Delete(deletes)
	}
}

// run is the adapter's loop for one Run call: connect, sync, follow events, resync.
func (w *watcher) run(ctx context.Context) error {
	// Connect fails only when no server name resolves (DNS not ready yet, say): retry.
	for delay := w.a.cfg.ReconnectBackoff; ; delay = min(2*delay, w.a.cfg.ReconnectBackoffMax) {
		err := w.connect(ctx)
		if err == nil {
			break
		}
		w.a.log.Warn("cannot create the ZooKeeper client; retrying", "servers", w.a.servers, "err", err)
		w.lose(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	defer w.conn.zk.Close()

	var resync <-chan time.Time
	if w.a.cfg.ResyncInterval > 0 {
		t := time.NewTicker(w.a.cfg.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	owedReplace := true // the first state goes out with Replace
	// A full read of the tree is under way; it is timed from its first read (not from waiting
	// for a session) to its last.
	fullSync := true
	var syncStart time.Time
	var readsAtStart int64
	w.queueRoots()
	for ctx.Err() == nil {
		for _, ev := range w.pend.takeSession() {
			if w.onSession(ev) {
				// A new session: every watch is gone; read everything again.
				owedReplace, fullSync, syncStart = true, true, time.Time{}
				w.queueAll()
			}
		}
		if w.pend.takeRewatch() {
			w.pend.forgetWatches()
			owedReplace, fullSync, syncStart = true, true, time.Time{}
			w.queueAll()
		}
		if w.failed && w.hasSession {
			// Reconnected within the session: the server kept our watches and sends what
			// changed; the merge layer wants a Replace to end the failure.
			owedReplace = true
		}
		if w.hasSession && w.authed && (w.pend.len() > 0 || owedReplace) {
			if fullSync && syncStart.IsZero() {
				syncStart, readsAtStart = time.Now(), w.conn.reads.Load()
			}
			if err := w.drain(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.a.log.Debug("sync interrupted; resuming when the session is back", "err", err)
			} else {
				if fullSync {
					w.a.recordFullSync(time.Since(syncStart), w.conn.reads.Load()-readsAtStart)
					fullSync = false
				}
				w.emit(owedReplace)
				owedReplace = false
				w.failed = false
			}
		}
		if w.hasSession && !w.authed {
			w.authenticate(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.pend.wake:
		case <-resync:
			if w.hasSession {
				w.a.log.Debug("periodic full resync")
				owedReplace, fullSync, syncStart = true, true, time.Time{}
				w.queueAll()
			}
		}
	}
	return nil
}

// queueRoots queues the roots, for the first sync.
func (w *watcher) queueRoots() {
	for r := range w.a.roots {
		w.pend.add(r, causeEvent)
	}
	if w.a.cfg.ServicesRoot != "-" {
		w.pend.add(w.a.cfg.ServicesRoot, causeEvent)
	}
	if w.a.cfg.MappingRoot != "-" {
		w.pend.add(w.a.cfg.MappingRoot, causeEvent)
	}
	if w.a.cfg.GovernanceRoot != "-" {
		w.pend.add(w.a.cfg.GovernanceRoot, causeEvent)
	}
}

// sameService reports whether two builds of a service are equal. Builds are deterministic
// (sorted ports, instances, aliases, consumers), so deep equality is content equality.
func sameService(a, b *registry.Service) bool { return reflect.DeepEqual(a, b) }
