package pipeline

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mcp-bridge/mcp-bridge/config"
)

// Watcher reloads the pipeline's configuration when its file changes and when Trigger is called
// (SIGHUP). It watches the file's directory, not the file: editors and Kubernetes replace files
// rather than write them, and a ConfigMap volume swaps its "..data" symlink without any event on
// the file itself (the approach of registry/file's watcher). A poll every PollInterval catches
// what notifications miss (an unmounted and re-mounted volume, a file system without inotify).
type Watcher struct {
	p    *Pipeline
	path string
	load func() (*config.Config, error)
	// PollInterval is the fallback check's period; default 10s.
	PollInterval time.Duration
	// Settle is how long a burst of events must pause before the file is read; default 100ms.
	Settle  time.Duration
	trigger chan struct{}
}

// Watch returns a Watcher for the configuration file at path, read with load (which must also
// validate it). Run starts it.
func (p *Pipeline) Watch(path string, load func() (*config.Config, error)) *Watcher {
	return &Watcher{p: p, path: path, load: load, PollInterval: 10 * time.Second, Settle: 100 * time.Millisecond, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a reload now, whether or not the file changed.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends. The file's content at start is taken as the running one.
func (w *Watcher) Run(ctx context.Context) {
	dir, base := filepath.Dir(w.path), filepath.Base(w.path)
	last, _ := fileSum(w.path)
	var fs *fsnotify.Watcher
	watch := func() {
		f, err := fsnotify.NewWatcher()
		if err == nil {
			if err = f.Add(dir); err != nil {
				f.Close()
			}
		}
		if err != nil {
			w.p.log.Warn("cannot watch the configuration file's directory; relying on polling and SIGHUP", "dir", dir, "error", err)
			return
		}
		fs = f
	}
	watch()
	defer func() {
		if fs != nil {
			fs.Close()
		}
	}()
	poll := time.NewTicker(w.PollInterval)
	defer poll.Stop()
	var settle <-chan time.Time
	reload := func(force bool) {
		sum, _ := fileSum(w.path)
		if sum == last && !force { // an unreadable file is reported once, not at every poll
			return
		}
		last = sum
		_ = w.p.LoadAndReload(ctx, w.load)
	}
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if fs != nil {
			events, errs = fs.Events, fs.Errors
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				fs.Close() // the directory went away; polling re-adds the watch
				fs = nil
			}
			name := filepath.Base(ev.Name)
			if (name == base || strings.HasPrefix(name, "..")) && settle == nil {
				settle = time.After(w.Settle)
			}
		case err := <-errs:
			w.p.log.Warn("watching the configuration file's directory; polling still runs", "dir", dir, "error", err)
		case <-settle:
			settle = nil
			reload(false)
		case <-w.trigger:
			w.p.log.Info("reloading the configuration on request", "file", w.path)
			reload(true)
		case <-poll.C:
			if fs == nil {
				watch()
			}
			reload(false)
		}
	}
}

// fileSum hashes the file's content (through symlinks, as a ConfigMap mounts it).
func fileSum(path string) ([sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}
