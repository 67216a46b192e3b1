// Package testkit holds the helpers every adapter's and the pipeline's tests share: a recording
// registry.Sink, the wait-for-condition loop, adapter runs, golden-file rendering. It is for
// tests only (production code must not import e2e/...) and imports no adapter, so an adapter's
// in-package tests may use it.
package testkit

import (
	"fmt"
	"testing"
	"time"
)

// PollInterval is how often WaitFor re-checks. It is fixed, with no backoff (unlike
// servers.WaitFor, which waits for processes to start): tests time how long changes take to
// arrive, and a growing poll delay would be measured with them.
const PollInterval = 20 * time.Millisecond

// Poll re-checks cond every PollInterval until it returns nil, and returns how long that took;
// after timeout it returns the last error.
func Poll(timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		time.Sleep(PollInterval)
	}
}

// WaitFor polls cond until it returns nil and returns how long it took; it fails the test after
// timeout with what last failed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	took, err := Poll(timeout, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return took
}

// WaitUntil is WaitFor for a condition that has no error to tell.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitFor(t, timeout, what, func() error {
		if !cond() {
			return errNotYet
		}
		return nil
	})
}

var errNotYet = fmt.Errorf("condition not met")
