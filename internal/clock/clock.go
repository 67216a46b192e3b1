// Package clock is the time source the bridge's timed code takes (merge's debounce and holds, the
// state file's writes, the refresh loop of polling adapters), so that tests drive it with
// internal/fakeclock instead of sleeping.
package clock

import "time"

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// System is the real clock.
type System struct{}

func (System) Now() time.Time                         { return time.Now() }
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }
