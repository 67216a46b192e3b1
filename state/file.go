package state

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcp-bridge/mcp-bridge/registry"
)

// The file is gzip-compressed JSON:
//
//	{"format":"mcp-bridge-state","version":2,"written":"<RFC 3339>","registries":[
//	  {"name":"zk","type":"zookeeper","services":[<registry.Service>, ...],
//	   "rules":[<registry.Rule>, ...]}, ...]}
//
// Version 2 added "rules" (governance rules), absent for a registry whose rules are unknown;
// version 1 files (no rules) are still read. A version 1 bridge rejects a version 2 file as
// another version and starts as without a file, instead of misreading it.
//
// format and version come first, so a reader rejects a foreign or newer file before decoding
// anything else. gzip's trailer (CRC-32 and length of the content) catches truncation and
// corruption that still decodes as JSON. Compression matters at scale: registry metadata repeats
// across instances, and the file shrinks 20-fold or more (BenchmarkWrite10k: 59 MB of JSON, 2.5 MB).
const (
	formatName = "mcp-bridge-state"
	// FormatVersion is the version of the file layout this package writes and reads. A change
	// that an older reader would misread increments it; an older bridge then ignores the file.
	FormatVersion = 2
	// oldestVersion is the oldest layout this package still reads.
	oldestVersion = 1
)

// Errors Load returns (wrapped, with detail) for a file that exists but cannot be used.
var (
	// ErrForeign: the file is not an mcp-bridge state file.
	ErrForeign = errors.New("not an mcp-bridge state file")
	// ErrVersion: the file was written in a layout this bridge does not read.
	ErrVersion = errors.New("unsupported state file version")
	// ErrCorrupt: the file is truncated, damaged or holds invalid content.
	ErrCorrupt = errors.New("state file is corrupt")
)

// Registry is one registry's saved state, identified by its configured name and type.
type Registry struct {
	Name     string              `json:"name"`
	Type     string              `json:"type"`
	Services []*registry.Service `json:"services"`
	// Rules are the registry's governance rules; nil when unknown (not written then), empty
	// when the registry is known to hold none.
	Rules []*registry.Rule `json:"rules,omitempty"`
}

// Saved is the content of a state file.
type Saved struct {
	// Written is when the file was written.
	Written    time.Time
	Registries []Registry
}

// header is the start of the document, before the registries.
type header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Written time.Time `json:"written"`
}

// write saves regs to path atomically and returns the file's size. The services are only read.
func write(path string, regs []Registry, written time.Time) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return 0, fmt.Errorf("creating a temporary file beside %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	cw := &countingWriter{w: tmp}
	bw := bufio.NewWriterSize(cw, 256<<10)
	// BestSpeed: about as small as the default level on this repetitive content, several times
	// faster.
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	if err := encode(zw, regs, written); err != nil {
		return 0, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	// The data must be on disk before the rename makes it the state file, or a crash could
	// leave a renamed but empty file.
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("replacing %s: %w", path, err)
	}
	ok = true
	// The rename itself must survive a crash too.
	if err := syncDir(dir); err != nil {
		return cw.n, fmt.Errorf("%s written, but syncing its directory failed: %w", path, err)
	}
	return cw.n, nil
}

// encode streams the document one service at a time, so a write needs no buffer the size of the
// estate. Services are written in key order, so the same state gives the same content.
func encode(w io.Writer, regs []Registry, written time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	h, err := json.Marshal(header{Format: formatName, Version: FormatVersion, Written: written.UTC()})
	if err != nil {
		return err
	}
	// The header object, reopened to continue with the registries.
	if _, err := io.WriteString(w, string(h[:len(h)-1])+`,"registries":[`); err != nil {
		return err
	}
	for i, r := range regs {
		name, _ := json.Marshal(r.Name)
		typ, _ := json.Marshal(r.Type)
		sep := ""
		if i > 0 {
			sep = ","
		}
		if _, err := fmt.Fprintf(w, "%s\n{\"name\":%s,\"type\":%s,\"services\":[", sep, name, typ); err != nil {
			return err
		}
		for j, svc := range sortedServices(r.Services) {
			if j > 0 {
				if _, err := io.WriteString(w, ","); err != nil {
					return err
				}
			}
			if err := enc.Encode(svc); err != nil {
				return fmt.Errorf("registry %q service %s: %w", r.Name, svc.Key(), err)
			}
		}
		if _, err := io.WriteString(w, "]"); err != nil {
			return err
		}
		if r.Rules != nil {
			if _, err := io.WriteString(w, `,"rules":[`); err != nil {
				return err
			}
			for j, rule := range sortedRules(r.Rules) {
				if j > 0 {
					if _, err := io.WriteString(w, ","); err != nil {
						return err
					}
				}
				if err := enc.Encode(rule); err != nil {
					return fmt.Errorf("registry %q rule %s: %w", r.Name, rule.Key(), err)
				}
			}
			if _, err := io.WriteString(w, "]"); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, "}"); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "]}\n")
	return err
}

func sortedServices(services []*registry.Service) []*registry.Service {
	type keyed struct {
		key string
		svc *registry.Service
	}
	ks := make([]keyed, 0, len(services))
	for _, s := range services {
		if s != nil {
			ks = append(ks, keyed{s.Key().String(), s})
		}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]*registry.Service, len(ks))
	for i, k := range ks {
		out[i] = k.svc
	}
	return out
}

// sortedRules orders rules by name and kind (within one registry), so the same state gives the
// same content; the rules are only read.
func sortedRules(rules []*registry.Rule) []*registry.Rule {
	out := make([]*registry.Rule, 0, len(rules))
	for _, r := range rules {
		if r != nil {
			out = append(out, r)
		}
	}
	registry.SortRules(out)
	return out
}

// Load reads a state file whole. A missing file is an error satisfying errors.Is(err,
// fs.ErrNotExist); one that exists but cannot be used wraps ErrForeign, ErrVersion or
// ErrCorrupt. On error nothing is returned, so nothing can be partially applied.
func Load(path string) (*Saved, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening state file: %w", err)
	}
	defer f.Close()
	saved, err := decode(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return saved, nil
}

func decode(r io.Reader) (*Saved, error) {
	zr, err := gzip.NewReader(r)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: empty or cut short (%v)", ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	defer zr.Close()
	dec := json.NewDecoder(zr)
	corrupt := func(what string, err error) error {
		if err == nil {
			return fmt.Errorf("%w: %s", ErrCorrupt, what)
		}
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	}

	// {"format":"mcp-bridge-state","version":N,"written":...,"registries":[
	// A read error this early is a truncated or damaged file; unexpected content is a foreign one.
	if tok, err := dec.Token(); err != nil {
		return nil, corrupt("reading the start", err)
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: it does not hold a JSON object", ErrForeign)
	}
	var h header
	for _, field := range []struct {
		key string
		val any
	}{{"format", &h.Format}, {"version", &h.Version}} {
		if tok, err := dec.Token(); err != nil {
			return nil, corrupt("reading the header", err)
		} else if tok != field.key {
			return nil, fmt.Errorf("%w: no %q field where it belongs", ErrForeign, field.key)
		}
		if err := dec.Decode(field.val); err != nil {
			return nil, fmt.Errorf("%w: field %q: %v", ErrForeign, field.key, err)
		}
		if field.key == "format" && h.Format != formatName {
			return nil, fmt.Errorf("%w: format %q", ErrForeign, h.Format)
		}
	}
	if h.Version < oldestVersion || h.Version > FormatVersion {
		return nil, fmt.Errorf("%w: the file has version %d, this bridge reads versions %d-%d (written by another bridge release; it will be replaced)", ErrVersion, h.Version, oldestVersion, FormatVersion)
	}
	if tok, err := dec.Token(); err != nil || tok != "written" {
		return nil, corrupt(`no "written" field`, err)
	}
	if err := dec.Decode(&h.Written); err != nil {
		return nil, corrupt(`field "written"`, err)
	}
	if tok, err := dec.Token(); err != nil || tok != "registries" {
		return nil, corrupt(`no "registries" field`, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, corrupt(`"registries" is not a list`, err)
	}
	saved := &Saved{Written: h.Written}
	seen := map[string]bool{}
	for dec.More() {
		reg, err := decodeRegistry(dec)
		if err != nil {
			return nil, corrupt(fmt.Sprintf("registry %d", len(saved.Registries)+1), err)
		}
		if err := checkRegistry(reg, seen); err != nil {
			return nil, corrupt(err.Error(), nil)
		}
		saved.Registries = append(saved.Registries, reg)
	}
	for _, want := range []json.Delim{']', '}'} {
		if tok, err := dec.Token(); err != nil || tok != want {
			return nil, corrupt("the document does not end where it should", err)
		}
	}
	// Reading to the end checks gzip's CRC-32 and length: a damaged file can decode as JSON.
	rest, err := io.ReadAll(io.MultiReader(dec.Buffered(), zr))
	if err != nil {
		return nil, corrupt("after the document", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, corrupt("data after the document", nil)
	}
	return saved, nil
}

// decodeRegistry reads one registry, its services one at a time: decoding the registry as one
// value would first buffer its whole JSON text (tens of MB at 100k instances).
func decodeRegistry(dec *json.Decoder) (Registry, error) {
	var reg Registry
	if err := expectDelim(dec, '{'); err != nil {
		return reg, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return reg, err
		}
		switch tok {
		case "name":
			err = dec.Decode(&reg.Name)
		case "type":
			err = dec.Decode(&reg.Type)
		case "services":
			if err := expectDelim(dec, '['); err != nil {
				return reg, fmt.Errorf("services: %w", err)
			}
			reg.Services = []*registry.Service{}
			for dec.More() {
				svc := new(registry.Service)
				if err := dec.Decode(svc); err != nil {
					return reg, fmt.Errorf("service %d: %w", len(reg.Services)+1, err)
				}
				reg.Services = append(reg.Services, svc)
			}
			err = expectDelim(dec, ']')
		case "rules":
			if err := expectDelim(dec, '['); err != nil {
				return reg, fmt.Errorf("rules: %w", err)
			}
			reg.Rules = []*registry.Rule{}
			for dec.More() {
				var rule *registry.Rule // null stays nil, for checkRegistry to reject
				if err := dec.Decode(&rule); err != nil {
					return reg, fmt.Errorf("rule %d: %w", len(reg.Rules)+1, err)
				}
				reg.Rules = append(reg.Rules, rule)
			}
			err = expectDelim(dec, ']')
		default:
			return reg, fmt.Errorf("unknown field %v", tok)
		}
		if err != nil {
			return reg, fmt.Errorf("field %v: %w", tok, err)
		}
	}
	return reg, expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("found %v where %v belongs", tok, want)
	}
	return nil
}

// checkRegistry rejects what this package never writes: a file that has it was damaged or
// edited, and is not trusted at all.
func checkRegistry(reg Registry, seen map[string]bool) error {
	if reg.Name == "" || reg.Type == "" {
		return fmt.Errorf("a registry without name or type")
	}
	if seen[reg.Name] {
		return fmt.Errorf("registry %q appears twice", reg.Name)
	}
	seen[reg.Name] = true
	keys := make(map[registry.Key]bool, len(reg.Services))
	for _, svc := range reg.Services {
		if svc == nil {
			return fmt.Errorf("registry %q: a null service", reg.Name)
		}
		if err := svc.Validate(); err != nil {
			return fmt.Errorf("registry %q: %w", reg.Name, err)
		}
		k := svc.Key()
		if keys[k] {
			return fmt.Errorf("registry %q: service %s appears twice", reg.Name, k)
		}
		keys[k] = true
	}
	ruleKeys := make(map[registry.RuleKey]bool, len(reg.Rules))
	for _, rule := range reg.Rules {
		if rule == nil {
			return fmt.Errorf("registry %q: a null rule", reg.Name)
		}
		if err := rule.Validate(); err != nil {
			return fmt.Errorf("registry %q: %w", reg.Name, err)
		}
		if ruleKeys[rule.Key()] {
			return fmt.Errorf("registry %q: rule %s appears twice", reg.Name, rule.Key())
		}
		ruleKeys[rule.Key()] = true
	}
	return nil
}

// tempPattern names the temporary files of path: hidden, and recognisable as leftovers of an
// interrupted write.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".*.tmp" }

// removeLeftovers deletes temporary files an interrupted write left beside path.
func removeLeftovers(path string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, m)
	}
	return removed, errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
