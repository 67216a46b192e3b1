package nacos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateDir: the SDK's cache directory is refused when someone else could plant files in
// it (the config client serves "<dataId>_failover" files from it instead of the server's value).
func TestPrivateDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the cache dir
		want  string                                 // "" = accepted
	}{
		{"created fresh", func(t *testing.T, base string) string { return filepath.Join(base, "a", "b") }, ""},
		{"existing private", func(t *testing.T, base string) string { return mkdir(t, base, "c", 0o700) }, ""},
		{"existing readable by others", func(t *testing.T, base string) string { return mkdir(t, base, "c", 0o755) }, ""},
		{"existing world-writable", func(t *testing.T, base string) string { return mkdir(t, base, "c", 0o777) }, "writable by nobody else"},
		{"symlink", func(t *testing.T, base string) string {
			target := mkdir(t, base, "real", 0o700)
			link := filepath.Join(base, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "not a directory"},
		{"parent world-writable, not sticky", func(t *testing.T, base string) string {
			return filepath.Join(mkdir(t, base, "shared", 0o777), "cache")
		}, "without the sticky bit"},
		{"parent world-writable and sticky", func(t *testing.T, base string) string {
			return filepath.Join(mkdir(t, base, "tmp", 0o777|os.ModeSticky), "cache")
		}, ""},
		{"parent owned by another user", func(t *testing.T, base string) string {
			p := mkdir(t, base, "theirs", 0o755)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Skipf("cannot give a directory to another user here: %v", err)
			}
			return filepath.Join(p, "cache")
		}, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, t.TempDir())
			err := privateDir(dir)
			if err == nil {
				if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
					t.Errorf("accepted with mode %v, want 0700", fi.Mode().Perm())
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func mkdir(t *testing.T, base, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(base, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // Chmod: Mkdir's mode is filtered by the umask
		t.Fatal(err)
	}
	return p
}
