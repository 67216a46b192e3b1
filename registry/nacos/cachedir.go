package nacos

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// privateDir creates dir (0700) if needed, closes it to others, and checks that nobody but this user (and root) can
// change what is in it. The SDK reads files back from its cache directory: the config client
// serves a "<dataId>_failover" file found there instead of asking the server (the Dubbo
// mapping), and the default directory is under the shared temporary directory, where another
// local user could create it first and plant one. So the directory must be a real directory
// (not a symlink) owned by this user and writable by nobody else, and every directory above it
// must be owned by this user or root and, if others may write to it, sticky (as /tmp is), so
// nobody else can rename the directory away and put their own in its place.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cacheDir: %w", err)
	}
	if !unixModes {
		return nil // no Unix owner and mode bits to check (Windows: ACLs)
	}
	uid := os.Getuid()
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("cacheDir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cacheDir: %s is not a directory (a symlink?); use a private directory", dir)
	}
	if owner(fi) != uid || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("cacheDir: %s is owned by uid %d with mode %v; it must be owned by uid %d and writable by nobody else, as the Nacos SDK reads files back from it", dir, owner(fi), fi.Mode().Perm(), uid)
	}
	// The SDK makes its subdirectories 0777 less the umask: only a parent nobody else can enter
	// keeps them closed.
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cacheDir: %w", err)
		}
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("cacheDir: %w", err)
		}
		if o := owner(fi); o != uid && o != 0 {
			return fmt.Errorf("cacheDir: %s, above %s, is owned by uid %d: another user could replace the cache directory", p, dir, o)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("cacheDir: %s, above %s, is writable by others (mode %v) without the sticky bit: another user could replace the cache directory", p, dir, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
