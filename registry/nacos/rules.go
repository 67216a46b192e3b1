package nacos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Dubbo governance rules in Nacos are config entries: dataId <key><suffix>, group "dubbo"
// (Dubbo.RulesGroup), in the namespace of the services they govern. Nacos has no cheap way to
// list dataIds, so the adapter reads the keys the registry suggests (ruleCandidates) and keeps
// a config listener on each: a rule written later under a key already watched arrives through
// its listener; a rule under a key no service suggests is never read (docs/registries.md).
//
// The semantics are the ZooKeeper adapter's: a rule that does not parse is rejected (reason
// bad-rule) and its last good version stays; a config deleted or emptied deletes the rule; the
// full state goes with ReplaceRules at sync and after a failure, changes with UpsertRules and
// DeleteRules. Listener callbacks only record the new content; the Run goroutine parses it.

// nsRule is one candidate rule config: a dataId within a namespace.
type nsRule struct{ ns, dataID string }

// ruleWatch is a candidate config the adapter reads and listens to.
type ruleWatch struct {
	param     *vo.ConfigParam
	known     bool           // GetConfig answered once: the rule's state is known
	listening bool           // ListenConfig succeeded
	rule      *registry.Rule // the last good parse; nil: no rule
	rejected  string         // the last parse error reported, "" when none
}

// ruleState is the governance rules of one adapter. Only the Run goroutine uses it, except
// pending, which listener callbacks write under Adapter.mu.
type ruleState struct {
	watches map[nsRule]*ruleWatch
	apps    map[subKey][]string // provider applications last seen per subscription (sticky)
	sent    map[registry.RuleKey]*registry.Rule
	shadow  map[nsRule]bool // rules hidden by the same key in an earlier namespace (rejected)
	touched bool            // a rule changed since the last emit
	retry   bool            // a read or listen failed: try again at the next flush
	pending map[nsRule]string
}

func newRuleState() *ruleState {
	return &ruleState{
		watches: make(map[nsRule]*ruleWatch),
		apps:    make(map[subKey][]string),
		sent:    make(map[registry.RuleKey]*registry.Rule),
		shadow:  make(map[nsRule]bool),
		pending: make(map[nsRule]string),
	}
}

// reasonShadowedRule is the Reject reason of a rule whose key another watched namespace also
// holds: rules are keyed without a namespace, and the earlier namespace of the configuration wins.
const reasonShadowedRule = "shadowed-rule"

// ruleSuffixes are the configuration key suffixes of the rule kinds, by scope: an application's
// key carries every kind, a service's only condition routers and configurators (Dubbo keys tag
// and mesh rules by application).
var (
	appRuleSuffixes     = []string{".tag-router", ".condition-router", ".configurators", ".MESHAPPRULE"}
	serviceRuleSuffixes = []string{".condition-router", ".configurators"}
)

// ruleCandidates derives the rule configs to watch from what the registry shows: for every
// provider application (the application parameter of Dubbo 2 providers, the name of Dubbo 3
// applications) each kind, and for every Dubbo 2 service key ("interface:version:group", empty
// parts kept) its condition router and configurators. A subscription's applications are sticky:
// a provider that restarts (zero instances for a moment) does not make its rules flap.
func (a *Adapter) ruleCandidates() map[nsRule]bool {
	r := a.rules
	want := make(map[nsRule]bool)
	add := func(ns, key string, suffixes []string) {
		for _, s := range suffixes {
			want[nsRule{ns, key + s}] = true
		}
	}
	for k := range r.apps {
		if a.st.subs[k] == nil {
			delete(r.apps, k)
		}
	}
	for k, s := range a.st.subs {
		p := a.st.parsed[s]
		switch s.role {
		case roleProvider:
			add(k.ns, s.dubbo.Interface+":"+s.dubbo.Version+":"+s.dubbo.Group, serviceRuleSuffixes)
			if p == nil {
				break
			}
			var apps []string
			for _, pr := range p.providers {
				if app := pr.Instance.Labels["app"]; app != "" && !slices.Contains(apps, app) {
					apps = append(apps, app)
				}
			}
			if len(apps) > 0 {
				r.apps[k] = apps
			}
		case roleApp:
			if p != nil && p.dubbo3 {
				r.apps[k] = []string{k.name}
			}
		}
	}
	for k, apps := range r.apps {
		for _, app := range apps {
			add(k.ns, app, appRuleSuffixes)
		}
	}
	return want
}

// refreshRules brings the watched configs in line with the candidates: new ones are read (with
// bounded concurrency) and listened to, those no longer suggested are dropped, and with them
// their rules.
func (a *Adapter) refreshRules(ctx context.Context) {
	if !a.cfg.Dubbo.Rules {
		return
	}
	r := a.rules
	r.retry = false
	want := a.ruleCandidates()
	var read []nsRule
	for k := range want {
		w := r.watches[k]
		if w == nil {
			w = &ruleWatch{param: a.ruleParam(k)}
			r.watches[k] = w
		}
		if !w.known {
			read = append(read, k)
		}
	}
	a.readRules(ctx, read)
	for _, k := range sortedRules(want) {
		w := r.watches[k]
		if w.listening || ctx.Err() != nil {
			continue
		}
		c, err := a.configFor(k.ns)
		if err == nil {
			err = c.ListenConfig(*w.param)
		}
		if err != nil {
			a.log.Warn("listening to a Dubbo governance rule failed; retrying", "namespace", k.ns, "dataId", k.dataID, "error", err)
			r.retry = true
			continue
		}
		w.listening = true
	}
	for k, w := range r.watches {
		if want[k] {
			continue
		}
		if c, ok := a.configs[k.ns]; ok && w.listening {
			_ = c.CancelListenConfig(*w.param)
		}
		if w.rejected != "" {
			a.sink.Accept(a.ruleWhere(k))
		}
		delete(r.watches, k)
		r.touched = true
	}
}

// ruleParam is the listener of one rule config; its callback runs on SDK goroutines.
func (a *Adapter) ruleParam(k nsRule) *vo.ConfigParam {
	return &vo.ConfigParam{DataId: k.dataID, Group: a.cfg.Dubbo.RulesGroup, OnChange: func(_, _, _, data string) {
		a.mu.Lock()
		a.rules.pending[k] = data
		a.mu.Unlock()
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}}
}

// readRules reads rule configs not read yet, SubscribeConcurrency at a time. A config that does
// not exist reads as "" (no rule); a failed read leaves the rule unknown and is retried.
func (a *Adapter) readRules(ctx context.Context, keys []nsRule) {
	if len(keys) == 0 {
		return
	}
	clients := make(map[string]configClient)
	for _, k := range keys {
		if _, ok := clients[k.ns]; ok {
			continue
		}
		c, err := a.configFor(k.ns)
		if err != nil {
			a.log.Warn("cannot read Dubbo governance rules", "namespace", k.ns, "error", err)
			a.rules.retry = true
			return
		}
		clients[k.ns] = c
	}
	type result struct {
		k    nsRule
		data string
		err  error
	}
	results := make([]result, len(keys))
	read := func(i int, k nsRule) {
		data, err := clients[k.ns].GetConfig(vo.ConfigParam{DataId: k.dataID, Group: a.cfg.Dubbo.RulesGroup})
		results[i] = result{k, data, err}
	}
	// The SDK starts a config client's connection on its first request without a lock: requests
	// made meanwhile on other goroutines race with it. One request per namespace goes first.
	first := make(map[string]bool)
	for i, k := range keys {
		if !first[k.ns] {
			first[k.ns] = true
			read(i, k)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, a.cfg.SubscribeConcurrency)
	for i, k := range keys {
		if results[i].k == k {
			continue // read first
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = result{k: k, err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			read(i, k)
		}()
	}
	wg.Wait()
	failed := 0
	for _, res := range results {
		if res.err != nil {
			failed++
			continue
		}
		a.rules.watches[res.k].known = true
		a.applyRule(res.k, res.data)
	}
	if failed > 0 {
		a.rules.retry = true
		a.log.Warn("reading Dubbo governance rules failed; retrying", "failed", failed, "of", len(keys))
	}
}

func (a *Adapter) ruleWhere(k nsRule) string {
	return "nacos:" + k.ns + "/" + a.cfg.Dubbo.RulesGroup + "/" + k.dataID
}

// applyRule parses a rule config's content. A rule that does not parse is rejected and its last
// good version stays: a garbled edit must not remove a routing rule. Empty content (a deleted
// config reads as "") is no rule.
func (a *Adapter) applyRule(k nsRule, data string) {
	w := a.rules.watches[k]
	if w == nil {
		return // no longer watched
	}
	if w.rule != nil && w.rule.Raw == data && w.rejected == "" {
		return
	}
	where := a.ruleWhere(k)
	rule, err := dubbo.ParseRule(k.dataID, where, []byte(data))
	if err != nil {
		if msg := err.Error(); msg != w.rejected {
			w.rejected = msg
			a.log.Warn("governance rule rejected; its last good version is kept", "config", where, "err", err)
			a.sink.Reject(where, dubbo.Reason(err), err)
			a.met.rejected.WithLabelValues(dubbo.Reason(err)).Inc()
		}
		return
	}
	if w.rejected != "" {
		w.rejected = ""
		a.sink.Accept(where)
	}
	w.rule = rule
	a.rules.touched = true
}

// takeRules applies what the listeners recorded.
func (a *Adapter) takeRules() {
	a.mu.Lock()
	pending := a.rules.pending
	a.rules.pending = make(map[nsRule]string)
	a.mu.Unlock()
	for _, k := range sortedRules(pending) {
		data := pending[k]
		if data == "" {
			var ok bool
			if data, ok = a.confirmDeleted(k); !ok {
				continue
			}
		}
		a.applyRule(k, data)
	}
}

// confirmDeleted re-reads a rule config whose listener reported it empty while a rule is held:
// deleting the rule shifts traffic, so an empty notification alone (seen from the SDK when a
// config is rewritten) is not trusted. It returns what the server holds now, or false when the
// read failed (the rule is kept and the read retried at the next flush).
func (a *Adapter) confirmDeleted(k nsRule) (string, bool) {
	if w := a.rules.watches[k]; w == nil || w.rule == nil {
		return "", true // nothing held: nothing to lose
	}
	c, err := a.configFor(k.ns)
	if err == nil {
		var data string
		if data, err = c.GetConfig(vo.ConfigParam{DataId: k.dataID, Group: a.cfg.Dubbo.RulesGroup}); err == nil {
			return data, true
		}
	}
	a.log.Warn("a governance rule config reads empty and could not be confirmed; the rule is kept", "config", a.ruleWhere(k), "err", err)
	a.rules.retry = true
	return "", false
}

// desiredRules is the rule of every key: of two namespaces holding the same key the one listed
// first in the configuration wins; the other is rejected as shadowed until it no longer clashes.
func (a *Adapter) desiredRules() map[registry.RuleKey]*registry.Rule {
	r := a.rules
	order := make(map[string]int, len(a.namespaces))
	for i, ns := range a.namespaces {
		order[ns] = i
	}
	keys := make([]nsRule, 0, len(r.watches))
	for k, w := range r.watches {
		if w.rule != nil {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if oi, oj := order[keys[i].ns], order[keys[j].ns]; oi != oj {
			return oi < oj
		}
		return keys[i].ns < keys[j].ns
	})
	out := make(map[registry.RuleKey]*registry.Rule, len(keys))
	shadow := make(map[nsRule]bool)
	for _, k := range keys {
		rule := r.watches[k].rule
		if first := out[rule.Key()]; first != nil {
			shadow[k] = true
			if !r.shadow[k] {
				err := fmt.Errorf("%s: rule %s is also in %s, which is listed first in namespaces; this one is ignored", a.ruleWhere(k), rule.Key(), first.Source)
				a.sink.Reject(a.ruleWhere(k), reasonShadowedRule, err)
			}
			continue
		}
		out[rule.Key()] = rule
	}
	for k := range r.shadow {
		if !shadow[k] {
			a.sink.Accept(a.ruleWhere(k))
		}
	}
	r.shadow = shadow
	return out
}

// emitRules sends the rules: all of them with ReplaceRules when replace is set, otherwise those
// that changed. It runs before the services are sent, so the Replace that ends a failure
// releases services and rules together.
func (a *Adapter) emitRules(replace bool) {
	r := a.rules
	if !a.cfg.Dubbo.Rules || (!replace && !r.touched) {
		return
	}
	r.touched = false
	want := a.desiredRules()
	if replace {
		all := make([]*registry.Rule, 0, len(want))
		for _, rule := range want {
			all = append(all, rule)
		}
		registry.SortRules(all)
		a.sink.ReplaceRules(all)
		r.sent = want
		return
	}
	var upserts []*registry.Rule
	var deletes []registry.RuleKey
	for k, rule := range want {
		if r.sent[k] != rule {
			upserts = append(upserts, rule)
		}
	}
	for k := range r.sent {
		if want[k] == nil {
			deletes = append(deletes, k)
		}
	}
	r.sent = want
	if len(upserts) > 0 {
		registry.SortRules(upserts)
		a.sink.UpsertRules(upserts)
	}
	if len(deletes) > 0 {
		sort.Slice(deletes, func(i, j int) bool { return deletes[i].String() < deletes[j].String() })
		a.sink.DeleteRules(deletes)
	}
}

func sortedRules[V any](m map[nsRule]V) []nsRule {
	out := make([]nsRule, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b nsRule) int {
		if c := strings.Compare(a.ns, b.ns); c != 0 {
			return c
		}
		return strings.Compare(a.dataID, b.dataID)
	})
	return out
}
