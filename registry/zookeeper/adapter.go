// Package zookeeper is the ZooKeeper registry adapter. It watches, with ZooKeeper watches and a
// periodic full resync as a safety net:
//
//   - Dubbo 2 interface-level registrations, /<root>/<interface>/{providers,consumers,
//     configurators,routers}/<URL-encoded Dubbo URL>, for every configured root (default
//     "dubbo"): one dubbo-interface service per interface + group + version, an instance per
//     provider URL, configurators applied, consumers recorded;
//   - Curator service-discovery instances under /services/<app>/<id>: Dubbo 3 application-level
//     instances (payload org.apache.dubbo.registry.zookeeper.ZookeeperInstance) become a
//     dubbo-application service, Spring Cloud Zookeeper instances (payload
//     org.springframework.cloud.zookeeper.discovery.ZookeeperInstance) an application service;
//   - Dubbo 3 interface->application mappings under /dubbo/mapping/<interface>;
//   - Dubbo governance rules under /dubbo/config/dubbo/<key><suffix> (rules.go), sent as
//     registry.Rule with ReplaceRules/UpsertRules/DeleteRules.
//
// Only what changed is read again: a watch that fires on a providers/ node re-lists that node
// and parses only the new names; a Curator instance is read again only when its data changed.
package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Adapter watches one ZooKeeper ensemble. It implements registry.Adapter and registry.Describer.
type Adapter struct {
	cfg     Config
	servers []string
	chroot  string
	roots   map[string]bool // Dubbo root paths
	log     *slog.Logger
	m       *metrics

	mu sync.Mutex
	st status
	// dialer is the current Run's connector, for Describe's failedDials (nil before Run).
	dialer atomic.Pointer[connector]
}

// New validates the configuration and returns an adapter; nothing is dialed until Run.
func New(cfg Config, opts registry.Options) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("zookeeper registry %q: %w", opts.Name, err)
	}
	servers, chroot, _ := cfg.connect()
	a := &Adapter{cfg: cfg, servers: servers, chroot: chroot, roots: make(map[string]bool), log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range cfg.DubboRoots {
		a.roots[rootPath(r)] = true
	}
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a.m = newMetrics(reg, a)
	a.st.parseFailures = make(map[string]*failureStat)
	return a, nil
}

// Run watches ZooKeeper until ctx is cancelled.
func (a *Adapter) Run(ctx context.Context, sink registry.Sink) error {
	w := &watcher{
		a:            a,
		sink:         sink,
		pend:         newPending(),
		ifaces:       make(map[string]*ifaceNode),
		byName:       make(map[string][]*ifaceNode),
		apps:         make(map[string]*appNode),
		mapping:      make(map[string][]string),
		mappingNodes: make(map[string]bool),
		emitted:      make(map[string]map[registry.Key]*registry.Service),
		rejected:     make(map[string]bool),
		touchedIface: make(map[string]bool),
		touchedApp:   make(map[string]bool),
		ruleNodes:    make(map[string]*ruleEntry),
		rulesSent:    make(map[string]*registry.Rule),
		touchedRules: make(map[string]bool),
		routes:       make(map[string]*registry.Rule),
	}
	return w.run(ctx)
}

// watcher is the state of one Run: the tree as last read and what was sent. Only the Run
// goroutine touches it, except pend, which the zk event callback feeds.
type watcher struct {
	a    *Adapter
	sink registry.Sink
	conn *conn
	pend *pending

	sessionID  int64
	hasSession bool
	authed     bool
	failed     bool
	authRetry  <-chan time.Time

	ifaces       map[string]*ifaceNode   // by path
	byName       map[string][]*ifaceNode // by decoded interface name, over every root
	apps         map[string]*appNode     // by application name
	mapping      map[string][]string     // interface -> applications
	mappingNodes map[string]bool         // mapping node names seen (raw)
	emitted      map[string]map[registry.Key]*registry.Service
	rejected     map[string]bool
	touchedIface map[string]bool
	touchedApp   map[string]bool
	ruleNodes    map[string]*ruleEntry     // governance rule nodes by name (rules.go)
	rulesSent    map[string]*registry.Rule // by node name: what the sink has
	touchedRules map[string]bool
	routes       map[string]*registry.Rule // Dubbo 2.6 routers/ condition rules by znode path
}

// connect creates the ZooKeeper client. It dials in the background and keeps reconnecting.
func (w *watcher) connect(ctx context.Context) error {
	c := &connector{ctx: ctx, initial: w.a.cfg.ReconnectBackoff, max: w.a.cfg.ReconnectBackoffMax, log: w.a.log}
	w.a.dialer.Store(c)
	zc, _, err := zk.Connect(w.a.servers, w.a.cfg.SessionTimeout,
		zk.WithDialer(func(network, addr string, timeout time.Duration) (netConn net.Conn, err error) {
			netConn, err = c.dial(network, addr, timeout)
			// Report an outage once every server failed in a row (one dead server of several
			// is not one).
			if err != nil && ctx.Err() == nil && c.consecutiveFailures() >= len(w.a.servers) {
				w.pend.pushSession(zk.Event{Type: zk.EventSession, State: zk.StateDisconnected, Err: err, Server: addr})
			}
			return netConn, err
		}),
		zk.WithEventCallback(w.onEvent),
		zk.WithLogger(zkLogger{log: w.a.log, lostWatches: w.pend.requestRewatch}),
		zk.WithLogInfo(false),
		zk.WithMaxBufferSize(64<<20),
	)
	if err != nil {
		return fmt.Errorf("creating ZooKeeper client for %v: %w", w.a.servers, err)
	}
	w.conn = &conn{zk: zc, chroot: w.a.chroot, reads: &w.a.m.readsTotal}
	context.AfterFunc(ctx, zc.Close)
	return nil
}

// onEvent is go-zookeeper's callback: it must not block.
func (w *watcher) onEvent(ev zk.Event) {
	switch ev.Type {
	case zk.EventSession:
		w.pend.pushSession(ev)
	case zk.EventNodeCreated, zk.EventNodeDeleted, zk.EventNodeDataChanged, zk.EventNodeChildrenChanged:
		if p, ok := relPath(w.a.chroot, ev.Path); ok {
			w.pend.add(p, causeEvent)
		}
	}
}

// onSession follows the session's state; it reports a new session that replaced a lost one,
// whose watches are all gone.
func (w *watcher) onSession(ev zk.Event) (newSession bool) {
	switch ev.State {
	case zk.StateHasSession:
		id := w.conn.zk.SessionID()
		switch {
		case w.sessionID == 0:
			w.a.log.Info("ZooKeeper session established", "session", fmt.Sprintf("0x%x", id), "server", ev.Server)
			w.a.sessionEstablished(id, false)
		case id != w.sessionID:
			w.a.log.Warn("ZooKeeper session expired and was replaced; reading everything again", "old", fmt.Sprintf("0x%x", w.sessionID), "new", fmt.Sprintf("0x%x", id))
			w.a.sessionEstablished(id, true)
			newSession = true
		default:
			w.a.log.Info("reconnected to ZooKeeper within the session", "server", ev.Server)
			w.a.reconnected()
		}
		w.sessionID, w.hasSession = id, true
	case zk.StateExpired:
		w.pend.forgetWatches()
		w.lose(fmt.Errorf("ZooKeeper session 0x%x expired", w.sessionID))
	case zk.StateAuthFailed:
		w.lose(fmt.Errorf("ZooKeeper rejected the credentials"))
	case zk.StateDisconnected:
		err := ev.Err
		if err == nil {
			err = fmt.Errorf("disconnected from ZooKeeper %s", ev.Server)
		} else {
			err = fmt.Errorf("cannot reach ZooKeeper %s: %w", ev.Server, err)
		}
		w.lose(err)
	}
	return newSession
}

// lose marks the registry unreachable once per outage; the merge layer holds the last state.
func (w *watcher) lose(err error) {
	if w.hasSession {
		w.a.log.Warn("lost ZooKeeper; holding the last-known state", "err", err)
	}
	w.hasSession = false
	w.a.setConnected(false)
	if !w.failed {
		w.failed = true
		w.sink.Fail(err)
	}
}

// authenticate adds the digest credentials once; go-zookeeper re-sends them on every reconnect.
func (w *watcher) authenticate(ctx context.Context) {
	if w.a.cfg.Digest.IsZero() {
		w.authed = true
		return
	}
	if w.authRetry != nil {
		select {
		case <-w.authRetry:
			w.authRetry = nil
		case <-ctx.Done():
			return
		}
	}
	secret, err := w.a.cfg.Digest.Read()
	if err == nil {
		err = w.conn.zk.AddAuth("digest", []byte(secret))
	}
	if err != nil {
		if !isConnErr(err) {
			w.a.log.Error("ZooKeeper digest authentication failed; retrying", "digest", w.a.cfg.Digest.String(), "err", err)
			if !w.failed {
				w.failed = true
				w.sink.Fail(fmt.Errorf("digest credentials (%s): %w", w.a.cfg.Digest.String(), err))
			}
		}
		w.authRetry = time.After(w.a.cfg.ReconnectBackoff)
		return
	}
	w.authed = true
}

// reject reports a malformed entry (once while it stays malformed).
func (w *watcher) reject(where, reason string, err error) {
	w.a.countFailure(reason, where)
	if !w.rejected[where] {
		w.rejected[where] = true
		w.sink.Reject(where, reason, err)
	}
}

// accept withdraws an earlier reject of where.
func (w *watcher) accept(where string) {
	if w.rejected[where] {
		delete(w.rejected, where)
		w.sink.Accept(where)
	}
}

// publishStatus copies what the status page shows out of the Run goroutine's state.
func (w *watcher) publishStatus() {
	consumers := make(map[string]map[string]bool)
	services := 0
	for _, m := range w.emitted {
		for _, s := range m {
			services++
			for _, c := range s.Consumers {
				if consumers[c] == nil {
					consumers[c] = make(map[string]bool)
				}
				consumers[c][s.Key().String()] = true
			}
		}
	}
	// Consumers of interfaces nobody provides are edges too: a Sidecar scope must still name them.
	for name, nodes := range w.byName {
		if len(w.emitted["i:"+name]) > 0 {
			continue
		}
		for _, n := range nodes {
			for _, e := range n.cats["consumers"] {
				if app := consumerApp(e); app != "" {
					if consumers[app] == nil {
						consumers[app] = make(map[string]bool)
					}
					consumers[app][string(registry.KindDubboInterface)+":"+name+" (no providers)"] = true
				}
			}
		}
	}
	graph := make(map[string][]string, len(consumers))
	for c, set := range consumers {
		list := make([]string, 0, len(set))
		for k := range set {
			list = append(list, k)
		}
		sort.Strings(list)
		graph[c] = list
	}
	var cfgs []configuratorStatus
	var routers []routerStatus
	for _, n := range w.ifaces {
		cfgs = append(cfgs, n.cfgStatus...)
		for name := range n.cats["routers"] {
			routers = append(routers, routerStatus{Interface: n.name, Router: describeChild("", name)})
		}
	}
	sort.Slice(cfgs, func(i, j int) bool {
		if cfgs[i].Interface != cfgs[j].Interface {
			return cfgs[i].Interface < cfgs[j].Interface
		}
		return cfgs[i].Configurator < cfgs[j].Configurator
	})
	sort.Slice(routers, func(i, j int) bool {
		return routers[i].Interface+routers[i].Router < routers[j].Interface+routers[j].Router
	})
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	w.a.st.services = services
	w.a.st.interfaces = len(w.byName)
	w.a.st.applications = len(w.apps)
	w.a.st.consumers = graph
	w.a.st.configurators = cfgs
	w.a.st.routers = routers
	w.a.st.ruleNodes = len(w.ruleNodes)
	w.a.st.watched = w.pend.watchCount()
	w.a.st.rejected = len(w.rejected)
}
