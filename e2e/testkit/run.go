package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// stopBound is how long an adapter's Run may take to return once cancelled.
const stopBound = 10 * time.Second

// Running is an adapter run by a test on a RecordSink.
type Running struct {
	Sink   *RecordSink
	cancel context.CancelFunc
	done   chan error // Run's result, put back once read so that Stop may be called again
}

// Run runs a on a new RecordSink with the given checks until the test ends or Stop; at the end
// the test fails unless Run returned nil within 10 s of cancellation.
func Run(t testing.TB, a registry.Adapter, opts ...Option) *Running {
	r := &Running{Sink: NewRecordSink(opts...), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx, r.Sink) }()
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// Stop stops the adapter, waits for it and returns what Run returned; it may be called more
// than once.
func (r *Running) Stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			return fmt.Errorf("Run: %w", err)
		}
		return nil
	case <-time.After(stopBound):
		return fmt.Errorf("run did not return within %v of cancellation", stopBound)
	}
}

// TeeSink sends every call to several sinks; all but the last get copies of the services, as
// each sink owns what it is given.
type TeeSink []registry.Sink

func (t TeeSink) Replace(s []*registry.Service) {
	for i, k := range t {
		k.Replace(t.own(i, s))
	}
}

func (t TeeSink) Upsert(s []*registry.Service) {
	for i, k := range t {
		k.Upsert(t.own(i, s))
	}
}

func (t TeeSink) own(i int, in []*registry.Service) []*registry.Service {
	if i == len(t)-1 {
		return in
	}
	out := make([]*registry.Service, len(in))
	for i, s := range in {
		out[i] = s.Clone()
	}
	return out
}

func (t TeeSink) Delete(keys []registry.Key) {
	for _, k := range t {
		k.Delete(keys)
	}
}

func (t TeeSink) Fail(err error) {
	for _, k := range t {
		k.Fail(err)
	}
}

func (t TeeSink) Reject(where, reason string, err error) {
	for _, k := range t {
		k.Reject(where, reason, err)
	}
}

func (t TeeSink) Accept(where string) {
	for _, k := range t {
		k.Accept(where)
	}
}

// Rules are immutable once sent, so every sink may share them.
func (t TeeSink) ReplaceRules(rules []*registry.Rule) {
	for _, k := range t {
		k.ReplaceRules(rules)
	}
}

func (t TeeSink) UpsertRules(rules []*registry.Rule) {
	for _, k := range t {
		k.UpsertRules(rules)
	}
}

func (t TeeSink) DeleteRules(keys []registry.RuleKey) {
	for _, k := range t {
		k.DeleteRules(keys)
	}
}

// Logger logs through the test, at Info and above.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
