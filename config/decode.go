package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mcp-bridge/mcp-bridge/istio"
)

// decode strictly decodes one YAML document into a Config and also returns the document's node
// tree, which validation uses to give each problem the line it is on.
func decode(b []byte) (*Config, *yaml.Node, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil, errors.New("the file is empty: at least one registry is required (see deploy/examples/config.yaml)")
	}
	if len(b) > MaxFileSize {
		return nil, nil, fmt.Errorf("the configuration is %s, larger than the %d MiB limit", humanSize(int64(len(b))), MaxFileSize>>20)
	}
	if err := checkItems(b); err != nil {
		return nil, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, explainSyntax(b, err)
	}
	if err := checkExpansion(&doc); err != nil {
		return nil, nil, err
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: the configuration must be a mapping of sections (mcp, registries, ...), not a %s", doc.Content[0].Line, kindName(doc.Content[0]))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, nil, explainDecode(&doc, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, nil, errors.New("the file holds more than one YAML document ('---'): put the whole configuration in one")
	}
	return &c, &doc, nil
}

var (
	// The type is a Go type name, or for a registry entry the struct built from the registry
	// table (registryYAML), whose name has spaces.
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (.+)$`)
	lineRE         = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// explainDecode rewrites yaml.v3's type errors in the configuration's own terms: the YAML path
// of the offending key instead of a Go type name, and for an unknown field the fields that exist.
func explainDecode(doc *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w", err)
	}
	known := knownFields(reflect.TypeFor[Config]())
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			where := pathAtLine(doc, line)
			msg := fmt.Sprintf("line %d: unknown field %q", line, m[2])
			if parent := parentPath(where); parent != "" {
				msg += " in " + parent
			}
			if fields := known[m[3]]; len(fields) > 0 {
				msg += " (valid fields: " + strings.Join(fields, ", ") + ")"
			}
			msgs = append(msgs, msg)
			continue
		}
		if m := lineRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			detail := strings.NewReplacer("!!str", "string", "!!int", "number", "!!seq", "list", "!!map", "mapping", "!!bool", "boolean", "!!float", "number").Replace(m[2])
			if where := pathAtLine(doc, line); where != "" {
				msgs = append(msgs, fmt.Sprintf("line %d: %s: %s", line, where, detail))
				continue
			}
			msgs = append(msgs, fmt.Sprintf("line %d: %s", line, detail))
			continue
		}
		msgs = append(msgs, e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// explainSyntax adds the line to the syntax errors yaml.v3 reports without one (a tab used for
// indentation is the common case).
func explainSyntax(b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.Contains(msg, "cannot start any token") {
		for i, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimLeft(l, " "), "\t") {
				return fmt.Errorf("not valid YAML: line %d: a tab is used for indentation; YAML allows only spaces", i+1)
			}
		}
	}
	return fmt.Errorf("not valid YAML: %s", msg)
}

// knownFields maps each struct type reachable from t (by its Go name, as yaml.v3 reports it) to
// the YAML keys it accepts.
func knownFields(t reflect.Type) map[string][]string {
	out := make(map[string][]string)
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t == reflect.TypeFor[Registry]() {
			// A registry entry decodes through the struct built from the registry table.
			t = registryYAML()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, done := out[t.String()]; done {
			return
		}
		var keys []string
		out[t.String()] = keys
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if strings.Contains(opts, "inline") {
				walk(f.Type)
				keys = append(keys, out[f.Type.String()]...)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			keys = append(keys, name)
			walk(f.Type)
		}
		sort.Strings(keys)
		out[t.String()] = keys
	}
	walk(t)
	return out
}

// pathAtLine returns the YAML path ("registries[1].zookeeper.servers") of the key on line, or "".
func pathAtLine(doc *yaml.Node, line int) string {
	var found string
	var walk func(n *yaml.Node, path string) bool
	walk = func(n *yaml.Node, path string) bool {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if walk(c, path) {
					return true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinPath(path, k.Value)
				if k.Line == line {
					found = p
					return true
				}
				if walk(v, p) {
					return true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				if c.Line == line && c.Kind == yaml.ScalarNode {
					found = p
					return true
				}
				if walk(c, p) {
					return true
				}
			}
		}
		return false
	}
	walk(doc, "")
	return found
}

// lineOfPath returns the line of the key at path, or of its nearest existing ancestor; 0 if none.
func lineOfPath(doc *yaml.Node, path string) int {
	if doc == nil {
		return 0
	}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for _, seg := range splitPath(path) {
		switch {
		case n.Kind == yaml.MappingNode && !seg.index:
			next := (*yaml.Node)(nil)
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		case n.Kind == yaml.SequenceNode && seg.index:
			if seg.i >= len(n.Content) {
				return line
			}
			n = n.Content[seg.i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

type pathSeg struct {
	key   string
	index bool
	i     int
}

func splitPath(path string) []pathSeg {
	var segs []pathSeg
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			open := strings.IndexByte(part, '[')
			if open < 0 {
				segs = append(segs, pathSeg{key: part})
				break
			}
			if open > 0 {
				segs = append(segs, pathSeg{key: part[:open]})
			}
			end := strings.IndexByte(part[open:], ']')
			if end < 0 {
				break
			}
			i, err := strconv.Atoi(part[open+1 : open+end])
			if err == nil {
				segs = append(segs, pathSeg{index: true, i: i})
			}
			part = part[open+end+1:]
		}
	}
	return segs
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "mapping"
}

// problems collects validation failures, each at a YAML path.
type problems []problem

type problem struct {
	path string
	msg  string
}

func (ps *problems) add(path, msg string) { *ps = append(*ps, problem{path: path, msg: msg}) }

// check records err at path, splitting joined errors so each is reported on its own.
func (ps *problems) check(path string, err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			ps.check(path, e)
		}
		return
	}
	// Sub-validators name their own field first ("servers: must not be empty"); fold it into the path.
	msg := err.Error()
	if field, rest, ok := strings.Cut(msg, ": "); ok && isFieldPath(field) {
		ps.add(joinPath(path, field), rest)
		return
	}
	ps.add(path, msg)
}

func isFieldPath(s string) bool {
	if s == "" || strings.ContainsAny(s, " \"'") {
		return false
	}
	c := s[0]
	return c >= 'a' && c <= 'z'
}

// withLines returns the problems as one error, each line prefixed with where it is in the file.
func (ps problems) withLines(doc *yaml.Node) error {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		if line := lineOfPath(doc, p.path); line > 0 {
			msgs[i] = fmt.Sprintf("line %d: %s: %s", line, p.path, p.msg)
		} else {
			msgs[i] = p.path + ": " + p.msg
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, fmt.Errorf("loading certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

func isDNSLabel(s string) bool { return istio.IsDNSLabel(s) }

func isDNSName(s string) bool {
	if len(s) > 253 || s == "" {
		return false
	}
	for _, l := range strings.Split(strings.ToLower(s), ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}
