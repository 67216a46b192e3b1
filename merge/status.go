package merge

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// RegistryStatus is one registry as /debug/registries shows it. It never holds credentials:
// errors are the adapters' own messages, which must not contain any.
type RegistryStatus struct {
	Name string `json:"name"`
	// Synced: a full state (Replace) arrived at least once.
	Synced bool `json:"synced"`
	// Connected: synced and not failed since.
	Connected bool `json:"connected"`
	// Stale: the served state was restored from a previous run and not yet confirmed.
	Stale bool `json:"stale,omitempty"`
	// AwaitingInitialSync: the first snapshot is waiting for this registry (it has neither
	// synced nor restored state), at most until Protection.InitialSyncTimeout.
	AwaitingInitialSync bool `json:"awaitingInitialSync,omitempty"`
	// MissedInitialSync: the first snapshot went out without this registry (Protection.InitialSyncTimeout)
	// and it has not synced since: Istiod has none of its services. LastError says why.
	MissedInitialSync bool      `json:"missedInitialSync,omitempty"`
	LastSync          time.Time `json:"lastSync,omitzero"`
	// LastError and LastErrorTime are the current failure's latest error: empty unless the
	// registry is failing now. A full state (Replace) ends the failure and moves it to Recovered.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// Recovered is the last failure that ended, so a past problem stays visible without
	// looking current.
	Recovered *RecoveredFailure `json:"recovered,omitempty"`
	Failures  uint64            `json:"failures"`
	// Protected: empty protection holds the registry's last-known state; Protection says why.
	Protected  bool              `json:"protected"`
	Protection *ProtectionStatus `json:"protection,omitempty"`
	// Withdrawn: the registry failed for longer than FailureHold and its services were withdrawn.
	Withdrawn bool `json:"withdrawn,omitempty"`
	// Services and Instances are what is served; Reported* what the registry last reported.
	// They differ while protection holds.
	Services          int `json:"services"`
	Instances         int `json:"instances"`
	ReportedServices  int `json:"reportedServices"`
	ReportedInstances int `json:"reportedInstances"`
	// Rejected lists entries the adapter could not use (the first maxRejectedDetails); RejectedTotal
	// counts all of them.
	Rejected      []Rejection `json:"rejected,omitempty"`
	RejectedTotal int         `json:"rejectedTotal,omitempty"`
	// Duplicates are the services this registry shares with others, and the rule applied.
	Duplicates []DuplicateStatus `json:"duplicates,omitempty"`
	// Rules are the governance rules served for this registry; nil when it never had any.
	Rules *RulesStatus `json:"rules,omitempty"`
}

// ProtectionStatus says why a registry's last-known state is held, since when and until when.
type ProtectionStatus struct {
	// Reason is "failure" or "mass-drop".
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	// Until is when the hold ends by itself; zero: only when the registry recovers.
	Until time.Time `json:"until,omitzero"`
}

// RecoveredFailure is a registry failure that has ended.
type RecoveredFailure struct {
	// Error is the failure's latest error.
	Error string `json:"error"`
	// Since is when the failure began, LastErrorTime when Error was reported, RecoveredAt when a
	// full state ended it.
	Since         time.Time `json:"since"`
	LastErrorTime time.Time `json:"lastErrorTime"`
	RecoveredAt   time.Time `json:"recoveredAt"`
}

// Rejection is an entry an adapter could not use.
type Rejection struct {
	Where  string    `json:"where"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
}

// DuplicateStatus is one identity served by several registries (or by several services of one).
type DuplicateStatus struct {
	Identity string        `json:"identity"`
	Rule     DuplicateMode `json:"rule"`
	// Members in priority order: the first gives the merged service's attributes (merge) or is
	// the one served (prefer).
	Members []DuplicateMember `json:"members"`
	// SharedEndpoints counts instances (address and ports) registered in several members and
	// served once (merge).
	SharedEndpoints int            `json:"sharedEndpoints,omitempty"`
	PortConflicts   []PortConflict `json:"portConflicts,omitempty"`
	// Summary says in words what happened: which registries report the identity, which services
	// of one registry map to it (names differing only in case or '_' do), and the outcome.
	Summary string `json:"summary"`
}

// DuplicateMember is one registry's service in a duplicate.
type DuplicateMember struct {
	Registry  string `json:"registry"`
	Service   string `json:"service"`
	Instances int    `json:"instances"`
	Shadowed  bool   `json:"shadowed,omitempty"`
}

// PortConflict is a port name two registries give different protocols (merge keeps the first).
type PortConflict struct {
	Port        string            `json:"port"`
	Kept        registry.Protocol `json:"kept"`
	KeptFrom    string            `json:"keptFrom"`
	Ignored     registry.Protocol `json:"ignored"`
	IgnoredFrom string            `json:"ignoredFrom"`
}

// maxRejectedDetails bounds the rejected entries kept in full per registry; beyond it only
// where and reason are kept, so counts stay right.
const maxRejectedDetails = 100

type rejection struct {
	reason   string
	err      string
	since    time.Time
	detailed bool
}

type rejections struct {
	entries  map[string]*rejection
	detailed int
	byReason map[string]int
}

func newRejections() rejections {
	return rejections{entries: map[string]*rejection{}, byReason: map[string]int{}}
}

func (m *Merger) reject(r *regState, where, reason string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if reason == "" {
		reason = "unspecified"
	}
	rs := &r.rejected
	e := rs.entries[where]
	if e == nil {
		e = &rejection{since: m.clock.Now()}
		if rs.detailed < maxRejectedDetails {
			e.detailed = true
			rs.detailed++
		}
		rs.entries[where] = e
		m.log.Warn("registry entry rejected", "registry", r.name, "where", where, "reason", reason, "error", msg)
	} else if e.reason != reason {
		rs.byReason[e.reason]--
		r.met.rejected(e.reason).Set(float64(rs.byReason[e.reason]))
	}
	if e.reason != reason {
		e.reason = reason
		rs.byReason[reason]++
		r.met.rejected(reason).Set(float64(rs.byReason[reason]))
	}
	if e.detailed {
		e.err = msg
	}
}

func (m *Merger) accept(r *regState, where string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := &r.rejected
	e := rs.entries[where]
	if e == nil {
		return
	}
	delete(rs.entries, where)
	if e.detailed {
		rs.detailed--
	}
	rs.byReason[e.reason]--
	r.met.rejected(e.reason).Set(float64(rs.byReason[e.reason]))
	m.log.Info("registry entry no longer rejected", "registry", r.name, "where", where)
}

// updateDuplicates records the duplicate reports of recomputed identities and logs their
// appearance, change and disappearance. Under m.mu.
func (m *Merger) updateDuplicates(work []groupWork, results []combined) {
	for i, w := range work {
		old, dup := m.dups[w.ident], results[i].dup
		switch {
		case dup == nil && old == nil:
			continue
		case dup == nil:
			delete(m.dups, w.ident)
			m.log.Info("identity is no longer shared by several services", "identity", w.ident, "was", old.Summary)
		case old == nil:
			m.dups[w.ident] = dup
			m.log.Warn(dup.Summary, "identity", w.ident, "rule", dup.Rule, "members", memberList(dup))
		default:
			m.dups[w.ident] = dup
			if memberList(old) != memberList(dup) {
				m.log.Info("services sharing an identity changed: "+dup.Summary, "identity", w.ident, "rule", dup.Rule, "members", memberList(dup))
			}
		}
		if dup != nil {
			for _, c := range dup.PortConflicts {
				if old == nil || !slices.Contains(old.PortConflicts, c) {
					m.log.Warn("registries give a merged service's port different protocols; the first registry's is kept",
						"identity", w.ident, "port", c.Port, "kept", c.Kept, "keptFrom", c.KeptFrom, "ignored", c.Ignored, "ignoredFrom", c.IgnoredFrom)
				}
			}
		}
	}
	m.met.duplicates.Set(float64(len(m.dups)))
}

// duplicateSummary says precisely what a duplicate is. Services of one registry that map to one
// identity (names differing only in case or '_', which hosts cannot tell apart) are not "several
// registries", and saying so sends the operator looking in the wrong place.
func duplicateSummary(d *DuplicateStatus) string {
	var regs []string
	services := map[string][]string{}
	for _, mb := range d.Members {
		if services[mb.Registry] == nil {
			regs = append(regs, mb.Registry)
		}
		services[mb.Registry] = append(services[mb.Registry], strconv.Quote(mb.Service))
	}
	var parts []string
	if len(regs) > 1 {
		quoted := make([]string, len(regs))
		for i, r := range regs {
			quoted[i] = strconv.Quote(r)
		}
		parts = append(parts, fmt.Sprintf("registries %s report %s", strings.Join(quoted, ", "), d.Identity))
	}
	for _, r := range regs {
		if ss := services[r]; len(ss) > 1 {
			parts = append(parts, fmt.Sprintf("services %s of registry %q map to the same host %s", strings.Join(ss, " and "), r, d.Identity))
		}
	}
	outcome := "merged into one service"
	if d.Rule == DuplicatePrefer {
		outcome = fmt.Sprintf("only %s of registry %q is served", d.Members[0].Service, d.Members[0].Registry)
	}
	return strings.Join(parts, "; ") + "; " + outcome
}

func memberList(d *DuplicateStatus) string {
	parts := make([]string, len(d.Members))
	for i, mb := range d.Members {
		parts[i] = mb.Registry + ":" + mb.Service
	}
	return strings.Join(parts, ", ")
}

// Status reports every declared registry, in configuration order.
func (m *Merger) Status() []RegistryStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	idents := make([]string, 0, len(m.dups))
	for id := range m.dups {
		idents = append(idents, id)
	}
	sort.Strings(idents)
	out := make([]RegistryStatus, 0, len(m.regs))
	for _, r := range m.regs {
		s := RegistryStatus{
			Name: r.name, Synced: r.synced, Connected: r.synced && !r.failed, Stale: r.stale,
			AwaitingInitialSync: !m.emitted && !m.syncTimedOut && !r.ready(),
			MissedInitialSync:   r.missedInitialSync && !r.synced, LastSync: r.lastSync,
			LastError: r.lastErr, LastErrorTime: r.lastErrAt, Recovered: r.recovered, Failures: r.failures, Withdrawn: r.withdrawn,
			Services: len(r.served), Instances: r.servedInstances,
			ReportedServices: len(r.reported), ReportedInstances: r.reportedInstances,
			RejectedTotal: len(r.rejected.entries),
		}
		switch {
		case r.failed && !r.withdrawn:
			p := &ProtectionStatus{Reason: "failure", Since: r.failSince}
			if h := m.opts.Protection.FailureHold; h > 0 {
				p.Until = r.failSince.Add(h)
			}
			s.Protection = p
		case !r.failed && !r.dropSince.IsZero():
			s.Protection = &ProtectionStatus{Reason: "mass-drop", Since: r.dropSince, Until: r.dropSince.Add(m.opts.Protection.DropHold)}
		}
		for where, e := range r.rejected.entries {
			if e.detailed {
				s.Rejected = append(s.Rejected, Rejection{Where: where, Reason: e.reason, Error: e.err, Since: e.since})
			}
		}
		sort.Slice(s.Rejected, func(i, j int) bool { return s.Rejected[i].Where < s.Rejected[j].Where })
		for _, id := range idents {
			d := m.dups[id]
			for _, mb := range d.Members {
				if mb.Registry == r.name {
					s.Duplicates = append(s.Duplicates, *d)
					break
				}
			}
		}
		s.Protected = s.Protection != nil
		s.Rules = m.rulesStatus(r)
		out = append(out, s)
	}
	return out
}
