package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcp-bridge/mcp-bridge/merge"
)

// progressInterval is how often start-up progress is logged until the bridge is ready.
const progressInterval = 5 * time.Second

// logStartupProgress logs, every interval until ready reports true, each registry's initial sync
// progress: synced ones with their services and instances, waiting ones with how long and their
// last error, and the rate services arrived since the previous line. A long first sync of a large
// registry thereby shows it is progressing, and a stuck one says why.
func logStartupProgress(ctx context.Context, ready func() (bool, string), status func() []merge.RegistryStatus, log *slog.Logger, interval time.Duration) {
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := map[string]int{}
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, _ := ready(); ok {
			return
		}
		now := time.Now()
		for _, s := range status() {
			rate := float64(s.ReportedServices-prev[s.Name]) / now.Sub(last).Seconds()
			prev[s.Name] = s.ReportedServices
			attrs := []any{"registry", s.Name, "elapsed", now.Sub(start).Round(time.Second).String(),
				"services", s.ReportedServices, "instances", s.ReportedInstances, "servicesPerSecond", int(rate)}
			switch {
			case s.Synced || !s.AwaitingInitialSync:
				log.Info("start-up: registry synced", attrs...)
			case s.LastError != "":
				log.Warn("start-up: registry not synced yet, failing", append(attrs, "error", s.LastError)...)
			default:
				log.Info("start-up: registry syncing", attrs...)
			}
		}
		last = now
	}
}
