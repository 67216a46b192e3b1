package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// flowList returns a document whose staticResources is a flow list of n one-letter entries.
func flowList(n int) string {
	return fileRegistry + "staticResources: [" + strings.Repeat("a,", n) + "a]\n"
}

// billionLaughs is the classic YAML bomb: nine levels of nine aliases, 9^9 strings expanded.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString(fileRegistry + "translate:\n  dropLabels: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	b.WriteString("x0: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n")
	for i := 2; i <= 9; i++ {
		p := "*l" + string(rune('0'+i-1))
		b.WriteString("x" + string(rune('0'+i-1)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 8) + p + "]\n")
	}
	b.WriteString("staticResources: *l9\n")
	return b.String()
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestParseBoundsWhatDecodingCosts: a document too large, with too many items or with aliases
// expanding past the limit fails fast, with a clear error, having allocated little.
func TestParseBoundsWhatDecodingCosts(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
		// maxAlloc bounds the bytes Parse may allocate (the input itself is not counted).
		maxAlloc uint64
	}{
		{"larger than the file limit", flowList(MaxFileSize / 2), []string{"4.0 MiB, larger than the 4 MiB limit"}, 1 << 20},
		{"2 million list items", flowList(MaxFileSize/2 - 100), []string{"more than 50000 YAML items", "line 4"}, 1 << 20},
		{"items in a flow mapping", fileRegistry + "x: {" + strings.Repeat("a,", MaxItems) + "}\n", []string{"more than 50000 YAML items"}, 1 << 20},
		{"block list items", fileRegistry + "staticResources:\n" + strings.Repeat("- a\n", MaxItems), []string{"line 50000", "more than 50000 YAML items"}, 1 << 20},
		{"billion laughs", billionLaughs(), []string{"aliases (*name) expand it past the limit of 50000 YAML items"}, 1 << 20},
		{"an anchor containing itself", fileRegistry + "staticResources: &x [a, *x]\n", []string{"line 4", `anchor "x" contains an alias to itself`}, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(tt.doc)
			var err error
			start := time.Now()
			alloc := allocated(func() { _, err = Parse(doc) })
			took := time.Since(start)
			if err == nil {
				t.Fatal("Parse accepted the document")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if alloc > tt.maxAlloc {
				t.Errorf("Parse allocated %d KiB, want at most %d KiB", alloc>>10, tt.maxAlloc>>10)
			}
			if took > 2*time.Second {
				t.Errorf("Parse took %v", took)
			}
			t.Logf("%d KiB in, %d KiB allocated, %v: %v", len(doc)>>10, alloc>>10, took, err)
		})
	}
}

// TestParseAcceptsDocumentsWithinBounds: the limits leave room for any real configuration, and
// the worst document within them (a flow mapping making three nodes per mark) costs a bounded
// amount of memory.
func TestParseAcceptsDocumentsWithinBounds(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(example); err != nil {
		t.Fatalf("the example configuration: %v", err)
	}
	const near = MaxItems - 100
	tests := []struct {
		name     string
		doc      string
		wantErr  string // the document is decoded and then fails validation, or "" to pass
		maxAlloc uint64
	}{
		{"a long list", flowList(near), "", 128 << 20},
		{"the most nodes per mark", fileRegistry + "translate:\n  dropLabels: [x]\nx: {" + strings.Repeat("a,", near) + "}\n", `unknown field "x"`, 128 << 20},
		{"aliases within the limit", fileRegistry + "translate:\n  dropLabels: &l [a, b]\nstaticResources: *l\n", "staticResources[0]", 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = Parse([]byte(tt.doc)) })
			switch {
			case tt.wantErr == "" && err != nil && strings.Contains(err.Error(), "YAML items"):
				t.Fatalf("rejected by the item limit: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if alloc > tt.maxAlloc {
				t.Errorf("Parse allocated %d MiB, want at most %d MiB", alloc>>20, tt.maxAlloc>>20)
			}
			t.Logf("%d KiB in, %d MiB allocated", len(tt.doc)>>10, alloc>>20)
		})
	}
}

// TestLoadRefusesLargeFiles: a file above MaxFileSize is refused from its size, without being read.
func TestLoadRefusesLargeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse 52 MiB file: reading it would allocate 52 MiB.
	if err := f.Truncate(52 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var lerr error
	alloc := allocated(func() { _, lerr = Load(path) })
	want := "config file " + path + " is 52 MiB, larger than the 4 MiB limit"
	if lerr == nil || !strings.Contains(lerr.Error(), want) {
		t.Fatalf("Load: %v, want an error containing %q", lerr, want)
	}
	if alloc > 1<<20 {
		t.Errorf("Load allocated %d KiB", alloc>>10)
	}
}
