package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// Run sends the file's services with Replace, then watches the file until ctx is cancelled,
// sending Replace for every new valid version and Fail for an unreadable or invalid one. It
// returns an error only if the embedded example is broken (a build defect).
func (a *Adapter) Run(ctx context.Context, sink registry.Sink) error {
	if a.cfg.Path == "" {
		services, err := Parse(example)
		if err != nil {
			return fmt.Errorf("embedded example services file: %w", err)
		}
		a.loaded(sha256.Sum256(example), services)
		a.log.Info("serving the embedded example services file", "services", len(services))
		sink.Replace(services)
		<-ctx.Done()
		return nil
	}

	w := &watcher{a: a, sink: sink, path: a.cfg.Path, dir: filepath.Dir(a.cfg.Path), base: filepath.Base(a.cfg.Path)}
	defer w.close()
	w.watch()
	w.check(true)

	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	var settle <-chan time.Time // set while a burst of events finishes
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if w.fs != nil {
			events, errs = w.fs.Events, w.fs.Errors
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.Name == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The directory itself went away (an unmounted volume); inotify dropped the
				// watch. Polling re-adds it once the directory is back.
				w.close()
			}
			if w.relevant(ev) && settle == nil {
				settle = time.After(a.settle)
			}
		case err := <-errs:
			a.log.Warn("watching the services file's directory; polling still runs", "dir", w.dir, "error", err)
		case <-settle:
			settle = nil
			w.check(true)
		case <-poll.C:
			if w.fs == nil {
				w.watch()
			}
			w.check(false)
		}
	}
}

// watcher is the state of one Run: the notification source and what was last read.
type watcher struct {
	a               *Adapter
	sink            registry.Sink
	path, dir, base string
	fs              *fsnotify.Watcher
	watchErr        string
	prev            os.FileInfo // last stat, for the polling fallback
	readOK          bool        // the last attempt read the file (lastSum is its content)
	lastSum         [sha256.Size]byte
	failMsg         string // the failure last sent to the sink, so a lasting one is sent once
}

// watch starts notifications on the file's directory; on failure polling alone carries on and
// watch is retried at the next poll.
func (w *watcher) watch() {
	if w.a.noWatch {
		return
	}
	fs, err := fsnotify.NewWatcher()
	if err == nil {
		err = fs.Add(w.dir)
		if err != nil {
			fs.Close()
		}
	}
	if err != nil {
		if msg := err.Error(); msg != w.watchErr {
			w.a.log.Warn("cannot watch the services file's directory; relying on polling", "dir", w.dir, "pollInterval", w.a.cfg.PollInterval, "error", err)
			w.watchErr = msg
		}
		w.a.status.setWatch(false, err.Error())
		return
	}
	w.fs, w.watchErr = fs, ""
	w.a.status.setWatch(true, "")
}

func (w *watcher) close() {
	if w.fs != nil {
		w.fs.Close()
		w.fs = nil
		w.a.status.setWatch(false, "")
	}
}

// relevant tells events about the file from those about its neighbours. Names starting with ".."
// are Kubernetes' atomic-writer bookkeeping (..data, ..data_tmp, ..<timestamp>): the file itself
// is a symlink through ..data and gets no event of its own when the volume is updated.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	return name == w.base || strings.HasPrefix(name, "..")
}

// check reads the file if it may have changed (always when force is set, else when its metadata
// changed) and reports a new version or a new problem to the sink.
func (w *watcher) check(force bool) {
	info, err := os.Stat(w.path)
	if err != nil {
		// After a failed read the next good read is reported even if its content equals the
		// last good one: the sink has been told of a failure and waits for a Replace.
		w.prev, w.readOK = nil, false
		w.fail(fmt.Errorf("services file %s: %w", w.path, err), 0)
		return
	}
	if !force && w.prev != nil && os.SameFile(w.prev, info) && w.prev.Size() == info.Size() && w.prev.ModTime().Equal(info.ModTime()) {
		return
	}
	w.prev = info
	data, err := readLimited(w.path, w.a.cfg.MaxBytes)
	if err != nil {
		w.readOK = false
		w.fail(fmt.Errorf("services file %s: %w", w.path, err), 0)
		return
	}
	sum := sha256.Sum256(data)
	if w.readOK && sum == w.lastSum {
		return // same content: an unrelated event, a touch, or a swap to identical data
	}
	w.readOK, w.lastSum = true, sum
	services, err := Parse(data)
	if err != nil {
		w.a.metrics.reloads.WithLabelValues("error").Inc()
		var es Errors
		line := 0
		if errors.As(err, &es) {
			line = es.FirstLine()
		}
		w.fail(fmt.Errorf("services file %s is invalid, keeping the last good version: %w", w.path, err), line)
		return
	}
	w.a.metrics.reloads.WithLabelValues("ok").Inc()
	w.failMsg = ""
	w.a.loaded(sum, services)
	w.a.log.Info("services file loaded", "path", w.path, "services", len(services), "instances", countInstances(services))
	w.sink.Replace(services)
}

// readLimited reads the file, or fails without reading more than max+1 bytes when it is larger
// than max (checked on the bytes read, not only the size stat reported: the file may grow).
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		size := fmt.Sprintf("more than %d bytes", max)
		if info, err := f.Stat(); err == nil && info.Size() > max {
			size = fmt.Sprintf("%d bytes", info.Size())
		}
		return nil, fmt.Errorf("file is %s, over the limit of %d bytes (file.maxBytes); keeping the last good version", size, max)
	}
	return data, nil
}

func (w *watcher) fail(err error, line int) {
	w.a.metrics.valid.Set(0)
	w.a.metrics.errorLine.Set(float64(line))
	w.a.status.setError(err.Error(), line)
	if msg := err.Error(); msg != w.failMsg {
		w.failMsg = msg
		w.a.log.Warn("services file unusable; the last good version stays in service", "error", err)
		w.sink.Fail(err)
	}
}

func (a *Adapter) loaded(sum [sha256.Size]byte, services []*registry.Service) {
	a.metrics.valid.Set(1)
	a.metrics.errorLine.Set(0)
	a.metrics.lastLoad.SetToCurrentTime()
	a.status.setLoaded(hex.EncodeToString(sum[:]), len(services), countInstances(services))
}

func countInstances(services []*registry.Service) int {
	n := 0
	for _, s := range services {
		n += len(s.Instances)
	}
	return n
}

// status is what Describe shows; Run writes it, the status page reads it.
type status struct {
	mu                  sync.Mutex
	watching            bool
	watchErr            string
	loadedAt            time.Time
	sha256              string
	services, instances int
	err                 string
	errLine             int
	errSince            time.Time
}

func (s *status) setWatch(on bool, errMsg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watching, s.watchErr = on, errMsg
}

func (s *status) setLoaded(sum string, services, instances int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadedAt, s.sha256, s.services, s.instances = time.Now(), sum, services, instances
	s.err, s.errLine, s.errSince = "", 0, time.Time{}
}

func (s *status) setError(msg string, line int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != s.err {
		s.errSince = time.Now()
	}
	s.err, s.errLine = msg, line
}

func (s *status) describe(cfg Config) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string]any{}
	if cfg.Path == "" {
		d["embedded"] = true
	} else {
		d["path"] = cfg.Path
		d["pollInterval"] = cfg.PollInterval.String()
		d["watching"] = s.watching
		if s.watchErr != "" {
			d["watchError"] = s.watchErr
		}
	}
	if !s.loadedAt.IsZero() {
		d["loadedAt"] = s.loadedAt
		d["sha256"] = s.sha256
		d["services"] = s.services
		d["instances"] = s.instances
	}
	if s.err != "" {
		d["error"] = s.err
		d["errorSince"] = s.errSince
		if s.errLine > 0 {
			d["errorLine"] = s.errLine
		}
	}
	return d
}
