package config

import (
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Bounds on what reading a configuration may cost. A real configuration is a few KB (the fully
// commented deploy/examples/config.yaml is 11 KB with ~300 items); these are hundreds of times
// that, and keep a mistaken or hostile file (a generated 50 MB list, a YAML "billion laughs")
// from taking the process's memory: yaml.v3 builds a node tree of ~250 bytes per item, twice
// (once for line numbers, once for strict decoding), so 4 million items would cost 2 GB, and validating 50,000
// items about 70 MB.
const (
	// MaxFileSize is the largest configuration file read.
	MaxFileSize = 4 << 20
	// MaxItems bounds the YAML items (keys, values, list entries) of a configuration, counted
	// before parsing from the marks that introduce them (':', ',', '-', '[', '{', '?') and again
	// after parsing with every alias expanded.
	MaxItems = 50_000
	// maxNodes bounds the YAML nodes of a document with every alias expanded. A document within
	// MaxItems has at most this many before expansion (see checkItems), so only aliases can
	// exceed it.
	maxNodes = 3*MaxItems + 1
)

// readFile reads path, refusing a file larger than MaxFileSize before reading it (and, for a
// pipe or device whose size is unknown, after reading one byte past the limit).
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooLarge(path, st.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("config file %s is larger than the %d MiB limit", path, MaxFileSize>>20)
	}
	return b, nil
}

func tooLarge(path string, size int64) error {
	return fmt.Errorf("config file %s is %s, larger than the %d MiB limit (a configuration is a few KB; is this the right file?)", path, humanSize(size), MaxFileSize>>20)
}

func humanSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkItems bounds the items of a document before yaml.v3 allocates a node for each. It counts
// the marks that introduce an item: every node but the root follows one of ':' (a mapping value),
// ',' (a flow entry), '[' or '{' (a flow collection's first entry), '-' followed by a blank (a
// block list entry) or '?' (an explicit key). Marks inside strings and comments count too, so
// the count is an upper bound on a document's nodes divided by three (a flow mapping "{a, b}"
// makes a key and an empty value per ','), which is what bounds the memory.
func checkItems(b []byte) error {
	n, line := 0, 1
	for i, c := range b {
		switch c {
		case '\n':
			line++
			continue
		case ':', ',', '[', '{', '?':
		case '-':
			if i+1 < len(b) && b[i+1] != ' ' && b[i+1] != '\t' && b[i+1] != '\n' && b[i+1] != '\r' {
				continue
			}
		default:
			continue
		}
		if n++; n > MaxItems {
			return fmt.Errorf("line %d: the configuration has more than %d YAML items (keys, values and list entries) by this line; the limit bounds the memory reading it takes", line, MaxItems)
		}
	}
	return nil
}

// checkExpansion bounds the items of a parsed document with every alias expanded, as decoding it
// into the Config will (yaml.v3 stops a "billion laughs" only after ~400,000 expanded values),
// and rejects an anchor that contains an alias to itself.
func checkExpansion(doc *yaml.Node) error {
	sizes := make(map[*yaml.Node]int)
	onPath := make(map[*yaml.Node]bool)
	var size func(n *yaml.Node) (int, error)
	size = func(n *yaml.Node) (int, error) {
		if s, ok := sizes[n]; ok {
			return s, nil
		}
		if onPath[n] {
			return 0, fmt.Errorf("line %d: anchor %q contains an alias to itself", n.Line, n.Anchor)
		}
		onPath[n] = true
		defer delete(onPath, n)
		total := 1
		children := n.Content
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			children = []*yaml.Node{n.Alias}
			total = 0
		}
		for _, c := range children {
			s, err := size(c)
			if err != nil {
				return 0, err
			}
			if total += s; total > maxNodes {
				return 0, errExpansion
			}
		}
		sizes[n] = total
		return total, nil
	}
	_, err := size(doc)
	if errors.Is(err, errExpansion) {
		return fmt.Errorf("the configuration's aliases (*name) expand it past the limit of %d YAML items (%d nodes); the limit bounds the memory decoding it takes", MaxItems, maxNodes)
	}
	return err
}

var errExpansion = errors.New("expansion limit")
