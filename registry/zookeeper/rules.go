package zookeeper

import (
	"path"
	"sort"

	"github.com/go-zookeeper/zk"

	"github.com/mcp-bridge/mcp-bridge/registry"
	"github.com/mcp-bridge/mcp-bridge/registry/dubbo"
)

// Governance rules live in Dubbo's ZooKeeper configuration center, one znode per rule whose data
// is the rule's YAML: <GovernanceRoot>/<key><suffix>, by default
// /dubbo/config/dubbo/com.example.Greeter:1.0.0:g1.condition-router or
// /dubbo/config/dubbo/shop.tag-router. The root's children are watched (a rule added or
// removed), and each rule node's data (a rule changed); a resync reads a node's data again only
// when its modification zxid changed. Other children of the root (dubbo.properties, ...) are
// not read.

// ruleEntry is one rule znode: the last good parse of its data.
type ruleEntry struct {
	mzxid int64
	rule  *registry.Rule // nil: never parsed well, or emptied
}

// applyRuleRoot follows the root's children: new rule nodes are read, vanished ones removed.
func (w *watcher) applyRuleRoot(p string, children []string, gone bool) {
	if gone {
		for name := range w.ruleNodes {
			w.removeRule(name)
		}
		w.watchRoot(p)
		return
	}
	present := make(map[string]bool, len(children))
	for _, c := range children {
		if _, _, ok := dubbo.RuleName(c); !ok {
			continue
		}
		present[c] = true
		if w.ruleNodes[c] == nil {
			w.ruleNodes[c] = &ruleEntry{}
			w.pend.add(path.Join(p, c), causeEvent)
		}
	}
	for name := range w.ruleNodes {
		if !present[name] {
			w.removeRule(name)
		}
	}
}

// removeRule forgets a rule node that was deleted: its rule is deleted downstream.
func (w *watcher) removeRule(name string) {
	p := path.Join(w.a.cfg.GovernanceRoot, name)
	w.accept(p)
	w.pend.setWatched(p, false)
	delete(w.ruleNodes, name)
	w.touchedRules[name] = true
}

// applyRule parses a rule node's data. A rule that does not parse is rejected and its last good
// version stays: a garbled edit must not remove a routing rule. Emptied data is no rule (Dubbo
// treats it as removed).
func (w *watcher) applyRule(p string, data []byte, stat *zk.Stat, gone bool) {
	name := path.Base(p)
	e := w.ruleNodes[name]
	if e == nil {
		return
	}
	if gone {
		w.removeRule(name)
		return
	}
	if stat != nil && stat.Mzxid == e.mzxid {
		return // unchanged since the last read (a resync)
	}
	if stat != nil {
		e.mzxid = stat.Mzxid
	}
	rule, err := dubbo.ParseRule(name, p, data)
	if err != nil {
		w.a.log.Warn("governance rule rejected; its last good version is kept", "node", p, "err", err)
		w.reject(p, dubbo.Reason(err), err)
		return
	}
	w.accept(p)
	e.rule = rule
	w.touchedRules[name] = true
}

// setRoute records the condition rule of a Dubbo 2.6 routers/ URL (nil: gone, or not a rule),
// by its znode path; such paths start with "/", rule node names never do. Routes are governance
// rules: with governanceRoot "-" they are not read either.
func (w *watcher) setRoute(p string, rule *registry.Rule) {
	if w.a.cfg.GovernanceRoot == "-" {
		return
	}
	if rule == nil {
		if _, ok := w.routes[p]; !ok {
			return
		}
		delete(w.routes, p)
	} else {
		w.routes[p] = rule
	}
	w.touchedRules[p] = true
}

// emitRules sends the rules: all of them with ReplaceRules when a full state is owed, otherwise
// the touched ones that changed. It runs before the services' Replace, so the Replace that ends a
// failure releases services and rules together.
func (w *watcher) emitRules(replace bool) {
	if w.a.cfg.GovernanceRoot == "-" {
		return // rules are not read: their state is unknown, not empty
	}
	touched := w.touchedRules
	w.touchedRules = make(map[string]bool)
	var upserts []*registry.Rule
	var deletes []registry.RuleKey
	for name := range touched {
		var now *registry.Rule
		if e := w.ruleNodes[name]; e != nil {
			now = e.rule
		} else {
			now = w.routes[name]
		}
		sent := w.rulesSent[name]
		switch {
		case now == sent:
		case now == nil:
			delete(w.rulesSent, name)
			deletes = append(deletes, sent.Key())
		default:
			w.rulesSent[name] = now
			upserts = append(upserts, now)
		}
	}
	if replace {
		all := make([]*registry.Rule, 0, len(w.rulesSent))
		for _, r := range w.rulesSent {
			all = append(all, r)
		}
		registry.SortRules(all)
		w.sink.ReplaceRules(all)
		return
	}
	if len(upserts) > 0 {
		registry.SortRules(upserts)
		w.sink.UpsertRules(upserts)
	}
	if len(deletes) > 0 {
		sort.Slice(deletes, func(i, j int) bool { return deletes[i].String() < deletes[j].String() })
		w.sink.DeleteRules(deletes)
	}
}
