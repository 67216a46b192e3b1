// Package state keeps each registry's last-known services in a file across restarts, so that a
// bridge restarted while a registry is unreachable serves what it served before instead of
// waiting for the registry, or, after the initial-sync timeout, serving nothing for it (which
// makes Istiod delete the registry's services).
//
// The file is written atomically (a temporary file in the same directory, fsynced, renamed over
// the old one, the directory fsynced), at most once per Config.Interval while changes keep coming,
// at once after a registry's first full sync, and on shutdown. It is read once at start: all or
// nothing, so a corrupt, truncated, foreign or future-version file is reported and ignored,
// never partially applied.
//
// The file holds the registry-neutral model (registry.Service), which by design carries no
// credentials: adapters reference secrets (registry.Secret) and never put them into services.
// This package neither merges nor serves anything; cmd/mcp-bridge wires it to the merge layer.
package state

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultInterval is the default of Config.Interval.
const DefaultInterval = 5 * time.Second

// Config is the `state` section of the bridge's configuration.
type Config struct {
	// File is where the state is kept, e.g. /var/lib/mcp-bridge/state.json.gz (gzip-compressed
	// JSON). Its directory must exist and be writable; a temporary file is created beside it for
	// every write. Empty, the default, keeps no state: a bridge restarted while a registry is
	// down then waits up to protection.initialSyncTimeout for it and serves without it after that.
	//
	// Off by default because no path is right everywhere: the bridge's own container has a
	// read-only root file system in the shipped manifests, a path derived from the host or pod
	// name would change at every restart (defeating the purpose), and bridges run side by side
	// (tests, several configurations on one host) must not share one file, which a fixed default
	// would make them do. The shipped Kubernetes manifest, Helm chart and sidecar example turn it
	// on with a file on an emptyDir volume, which survives container restarts (crashes, OOM
	// kills, liveness-probe restarts); a PersistentVolume also survives the pod being replaced.
	//
	// Give each bridge its own file: two bridges writing one file overwrite each other's state.
	File string `yaml:"file"`
	// Interval is the least time between two writes while changes keep coming. Default 5s. A
	// registry's first full sync and a graceful shutdown are written without waiting. A write
	// also waits at least ten times as long as the previous one took, so saving a very large
	// estate never costs more than about a tenth of a core.
	Interval time.Duration `yaml:"interval"`
}

// Enabled reports whether a state file is configured.
func (c Config) Enabled() bool { return c.File != "" }

// WithDefaults fills in the zero values.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	return c
}

// Validate checks the values (zero values mean defaults), naming fields by their YAML keys. It
// does not require the file's directory to exist: the configuration may be checked where it will
// not run (CI, `mcp-bridge validate`). At run time a missing directory is reported on the status
// page and in the log at every write attempt.
func (c Config) Validate() error {
	var errs []error
	if c.File != "" {
		if strings.HasSuffix(c.File, "/") {
			errs = append(errs, fmt.Errorf("file: %q names a directory; give a file name in it, e.g. %sstate.json.gz", c.File, c.File))
		} else if fi, err := os.Stat(c.File); err == nil && fi.IsDir() {
			errs = append(errs, fmt.Errorf("file: %q is a directory; give a file name in it, e.g. %s/state.json.gz", c.File, c.File))
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: must not be negative"))
	}
	return errors.Join(errs...)
}
