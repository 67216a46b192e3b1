package consul

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// probe checks every Timeout/2 that the agent answers a cheap request within Timeout, and
// delivers a failure, or a success after a failure, to the loop. Blocking queries cannot tell a
// hung agent from a quiet catalog: a frozen agent keeps their connections open, the kernel
// acknowledges, and nothing arrives until Wait (minutes) and the transport's timeout run out.
func (l *loop) probe(ctx context.Context) {
	every := l.a.cfg.Timeout / 2
	t := time.NewTicker(every)
	defer t.Stop()
	down := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, l.a.cfg.Timeout)
		start := time.Now()
		_, err := l.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(pctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			err = fmt.Errorf("the Consul agent did not answer GET /v1/status/leader within %v (consul.timeout): %w", l.a.cfg.Timeout, err)
		}
		if err == nil && !down {
			continue // healthy, as before: nothing to tell the loop
		}
		down = err != nil
		select {
		case l.events <- event{key: wkey{kind: queryLeader}, err: err}:
		case <-ctx.Done():
			return
		}
		l.a.log.Debug("consul liveness probe", "ok", err == nil, "took", time.Since(start))
	}
}

// probed handles a probe result. A failed probe fails the registry and restarts every query: the
// ones in flight may hang until Wait runs out even after the agent answers again, while new ones
// ask with index 0 and are answered at once. The first success after a failure restarts them
// again, cutting short the backoff of queries that failed meanwhile (the registry returns within
// a probe interval, not after a backoff grown to 30 s).
func (l *loop) probed(ctx context.Context, err error) {
	if err != nil {
		if l.probeDown {
			return
		}
		l.probeDown = true
		l.fail(err)
		l.restartWatches(ctx)
		return
	}
	if l.probeDown {
		l.probeDown = false
		l.a.log.Info("the Consul agent answers again; re-reading every query")
		l.restartWatches(ctx)
	}
}

// restartWatches stops every query and starts it again with index 0; its state is kept, marked
// stale, so the next answer is read whole and recovery waits for it.
func (l *loop) restartWatches(ctx context.Context) {
	keys := make([]wkey, 0, len(l.state))
	for k := range l.state {
		keys = append(keys, k)
	}
	now := time.Now()
	for _, k := range keys {
		st := l.state[k]
		l.stopWatch(k)
		l.startWatch(ctx, k)
		st.errAt, st.stale = now, true
		l.state[k] = st
	}
}
