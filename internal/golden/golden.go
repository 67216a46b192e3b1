// Package golden compares test output with reviewed files under testdata. Every test binary that
// imports it gets an -update flag that rewrites those files instead: `go test ./pkg -update`, then
// review the diff before committing it.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// update is the test binary's -update flag. A flag is process-wide by nature, and registering it
// here once keeps every package's golden tests driven the same way.
var update = flag.Bool("update", false, "rewrite the golden files under testdata instead of comparing with them")

// Compare fails t unless got equals the file at path, showing the first lines that differ. With
// -update it writes got to path (creating its directory) and passes.
func Compare(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("golden: %v", err)
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run go test with -update to create it, then review it)", err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test with -update and review the diff):\n%s", path, LineDiff(want, got))
	}
}

// LineDiff lists the first ten lines where got differs from want, by line number.
func LineDiff(want, got []byte) string {
	wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	var b bytes.Buffer
	shown := 0
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if bytes.Equal(w, g) {
			continue
		}
		b.WriteString("line " + strconv.Itoa(i+1) + ":\n- ")
		b.Write(w)
		b.WriteString("\n+ ")
		b.Write(g)
		b.WriteString("\n")
		if shown++; shown == 10 {
			b.WriteString("...\n")
			break
		}
	}
	return b.String()
}
