package consul

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// watch is one blocking query (the service list of a datacenter, or the health of one service)
// and what /debug/registries shows of it.
type watch struct {
	kind, dc, service string
	limiter           *rate.Limiter
	cancel            context.CancelFunc
	done              chan struct{}
	onReset           func()

	mu         sync.Mutex
	index      uint64
	lastChange time.Time
	requests   int64
	recent     []time.Time // request times within the last minute
	resets     int64
	lastErr    string
}

// fetchFunc makes one request with the given wait index and returns the index Consul answered
// with. It delivers the result itself.
type fetchFunc func(ctx context.Context, index uint64) (uint64, error)

// run follows Consul's documented rules for blocking queries until ctx ends:
//   - the index of each answer is the wait index of the next request;
//   - an index that goes backwards (the agent lost its state, a new leader with an older
//     snapshot) resets to 0: the next request does not block and reads everything again;
//   - an index below 1 is taken as 1, so a buggy answer never turns blocking into busy polling;
//   - every request first takes a token from a small bucket, so that a query whose answer changes
//     all the time is re-read at the bucket's rate instead of in a tight loop, while at rest each
//     query makes one request per wait;
//   - an error backs off exponentially (1 s doubling to 30 s) on top of the bucket, and the next
//     request after it does not block (index 0), as the agent may have restarted.
func (w *watch) run(ctx context.Context, fetch fetchFunc, onErr func(error)) {
	defer close(w.done)
	var index uint64
	backoff := time.Duration(0)
	for {
		if err := w.limiter.Wait(ctx); err != nil {
			return
		}
		w.countRequest()
		got, err := fetch(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.setErr(err)
			onErr(err)
			// The agent may come back restarted with other indexes: read everything again
			// rather than block on an index it may never reach.
			index = 0
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		next := got
		switch {
		case got < index:
			next = 0
			w.mu.Lock()
			w.resets++
			w.mu.Unlock()
			w.onReset()
		case got < 1:
			next = 1
		}
		w.setIndex(got, index)
		index = next
	}
}

func (w *watch) countRequest() {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	cut := 0
	for cut < len(w.recent) && now.Sub(w.recent[cut]) > time.Minute {
		cut++
	}
	w.recent = append(w.recent[cut:], now)
}

func (w *watch) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = err.Error()
}

func (w *watch) setIndex(got, prev uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = ""
	if got != prev {
		w.lastChange = time.Now()
	}
	w.index = got
}

// status is the watch as /debug/registries shows it.
func (w *watch) status() map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	n := 0
	for _, t := range w.recent {
		if now.Sub(t) <= time.Minute {
			n++
		}
	}
	s := map[string]any{
		"query":              w.kind,
		"datacenter":         w.dc,
		"index":              w.index,
		"requests":           w.requests,
		"requestsLastMinute": n,
		"indexResets":        w.resets,
		"lastChange":         w.lastChange,
	}
	if w.service != "" {
		s["service"] = w.service
	}
	if w.lastErr != "" {
		s["error"] = w.lastErr
	}
	return s
}
