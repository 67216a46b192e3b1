package eureka

import (
	"slices"
	"strings"
)

// normStatus is Netflix's InstanceStatus.toEnum: a status the client does not know is UNKNOWN;
// an instance that gives none is UP (InstanceInfo's default).
func normStatus(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	switch {
	case s == "":
		return StatusUp
	case slices.Contains(knownStatuses(), s):
		return s
	}
	return StatusUnknown
}

// state is the adapter's copy of the server's registry: every instance of every application,
// whatever the adapter's filters, since the hash code covers them all.
type state struct {
	apps   map[string]map[string]instance // app name -> instance id -> instance
	counts map[string]int                 // status -> instances
	// dirty are the apps changed since the services were last built.
	dirty map[string]bool
}

func newState() *state {
	return &state{apps: map[string]map[string]instance{}, counts: map[string]int{}, dirty: map[string]bool{}}
}

func (s *state) hash() string { return hashCode(s.counts) }

func (s *state) instances() int {
	n := 0
	for _, ins := range s.apps {
		n += len(ins)
	}
	return n
}

// put adds or replaces an instance; it reports whether anything changed.
func (s *state) put(appName string, in instance) bool {
	in.Action = "" // not part of the instance's content
	ins := s.apps[appName]
	if ins == nil {
		ins = map[string]instance{}
		s.apps[appName] = ins
	}
	old, had := ins[in.ID]
	if had && old == in {
		return false
	}
	if had {
		s.counts[old.Status]--
	}
	ins[in.ID] = in
	s.counts[in.Status]++
	s.dirty[appName] = true
	return true
}

// remove deletes an instance; an application left without instances is gone, as in a full fetch.
func (s *state) remove(appName, id string) bool {
	ins := s.apps[appName]
	old, had := ins[id]
	if !had {
		return false
	}
	delete(ins, id)
	s.counts[old.Status]--
	if len(ins) == 0 {
		delete(s.apps, appName)
	}
	s.dirty[appName] = true
	return true
}

// applyDelta applies an /apps/delta answer as Netflix's DiscoveryClient.updateDelta does:
// ADDED and MODIFIED put the instance (by id), DELETED removes it. It returns how many
// instances changed.
func (s *state) applyDelta(d apps) int {
	changed := 0
	for _, a := range d.Apps {
		for _, in := range a.Instances {
			name := appNameOf(a, in)
			var ok bool
			if strings.EqualFold(in.Action, ActionDeleted) {
				ok = s.remove(name, in.ID)
			} else {
				ok = s.put(name, in)
			}
			if ok {
				changed++
			}
		}
	}
	return changed
}

// replaceAll makes the state what a full fetch says, marking only the apps that differ dirty.
func (s *state) replaceAll(full apps) {
	next := newState()
	for _, a := range full.Apps {
		for _, in := range a.Instances {
			next.put(appNameOf(a, in), in)
		}
	}
	next.dirty = s.dirty
	for name, ins := range next.apps {
		if !sameInstances(s.apps[name], ins) {
			next.dirty[name] = true
		}
	}
	for name := range s.apps {
		if _, ok := next.apps[name]; !ok {
			next.dirty[name] = true
		}
	}
	*s = *next
}

func sameInstances(a, b map[string]instance) bool {
	if len(a) != len(b) {
		return false
	}
	for id, in := range a {
		if other, ok := b[id]; !ok || other != in {
			return false
		}
	}
	return true
}

// appNameOf is the application an instance belongs to: the application element's name,
// else the instance's own app field. Eureka upper-cases application names.
func appNameOf(a app, in instance) string {
	if a.Name != "" {
		return strings.ToUpper(a.Name)
	}
	return strings.ToUpper(in.App)
}
