package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the bridge configuration's rules section.
type Config struct {
	// Files are rule files or directories of them (*.yaml, *.yml, read in name order), watched
	// and reloaded when they change.
	Files []string `yaml:"files"`
	// Inline rules, each a name plus the fields of a rule's spec.
	Inline []InlineRule `yaml:"inline"`
	// DrainGrace is how long the bridge keeps serving endpoints removed in the same push as a
	// routing change of their service, so that Istiod applies the route change before the
	// endpoints go (docs/rules.md, "Staged push"). Default 1s; 0 turns staging off.
	DrainGrace *time.Duration `yaml:"drainGrace"`
}

// BridgeDrainGrace is DrainGrace as bridge.Options takes it: 0 for the default, negative for off.
func (c Config) BridgeDrainGrace() time.Duration {
	switch {
	case c.DrainGrace == nil:
		return 0
	case *c.DrainGrace == 0:
		return -1
	}
	return *c.DrainGrace
}

// InlineRule is a rule written in the configuration file.
type InlineRule struct {
	Name string `yaml:"name"`
	Spec `yaml:",inline"`
}

// Validate checks the inline rules: each error starts with its field path
// ("inline[0].canary.weight: ..."), which config turns into a line.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]int{}
	for i, r := range c.Inline {
		path := "inline[" + strconv.Itoa(i) + "]"
		if first, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is already the name of inline[%d]", path, r.Name, first))
		}
		seen[r.Name] = i
		if _, ps := compile(Rule{Name: r.Name, Spec: r.Spec}); len(ps) > 0 {
			for _, p := range ps {
				errs = append(errs, fmt.Errorf("%s.%s: %s", path, p.path, p.msg))
			}
		}
	}
	if c.DrainGrace != nil && (*c.DrainGrace < 0 || *c.DrainGrace > time.Minute) {
		errs = append(errs, fmt.Errorf("drainGrace: %v is out of range: give 0 (off) up to 1m; a removed endpoint is served that long after its removal", *c.DrainGrace))
	}
	for i, f := range c.Files {
		if f == "" {
			errs = append(errs, fmt.Errorf("files[%d]: empty path", i))
		}
	}
	return errors.Join(errs...)
}

// InlineRules returns the configuration's rules, with their origin.
func (c Config) InlineRules() []Rule {
	out := make([]Rule, len(c.Inline))
	for i, r := range c.Inline {
		out[i] = Rule{Name: r.Name, Origin: "config rules.inline[" + strconv.Itoa(i) + "]", Spec: r.Spec}
	}
	return out
}

// document is one rule document of a rule file.
type document struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`
}

type metadata struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// FileError is a rule file that cannot be used: the file, the line (0 when unknown) and why.
type FileError struct {
	File   string
	Line   int
	Reason string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("rule file %s: line %d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("rule file %s: %s", e.File, e.Reason)
}

// ParseFile decodes a rule file: one or several TrafficRule documents separated by "---".
// Decoding is strict: an unknown field, a wrong type, a wrong apiVersion or kind, or a rule that
// does not validate is an error naming the file, the line and the reason, and fails the whole
// file (every problem is listed, joined), so a typo never applies half a file.
func ParseFile(name string, b []byte) ([]Rule, error) {
	var nodes []*yaml.Node
	nd := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		err := nd.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, syntaxError(name, err)
		}
		nodes = append(nodes, &n)
	}
	var out []Rule
	var errs []error
	seen := map[string]int{}
	for _, n := range nodes {
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue // an empty document ("---" at the end)
		}
		line := n.Content[0].Line
		// yaml.v3 is strict (KnownFields) only when decoding a stream into a type, which would
		// lose the node tree the lines come from; unknownFields gives the same check on the tree.
		if uf := unknownFields(name, n.Content[0], reflect.TypeFor[document]()); len(uf) > 0 {
			errs = append(errs, uf...)
			continue
		}
		var d document
		if err := n.Decode(&d); err != nil {
			errs = append(errs, typeError(name, line, err))
			continue
		}
		fail := func(path, msg string) {
			errs = append(errs, &FileError{File: name, Line: lineOf(n, path, line), Reason: path + ": " + msg})
		}
		if d.APIVersion != APIVersion {
			fail("apiVersion", fmt.Sprintf("%q, want %q", d.APIVersion, APIVersion))
			continue
		}
		if d.Kind != KindRule {
			fail("kind", fmt.Sprintf("%q, want %q", d.Kind, KindRule))
			continue
		}
		if first, dup := seen[d.Metadata.Name]; dup {
			fail("metadata.name", fmt.Sprintf("%q is also defined at line %d", d.Metadata.Name, first))
			continue
		}
		seen[d.Metadata.Name] = line
		r := Rule{Name: d.Metadata.Name, Origin: name + ":" + strconv.Itoa(line), Spec: d.Spec}
		if _, ps := compile(r); len(ps) > 0 {
			for _, p := range ps {
				path := "spec." + p.path
				if p.path == "name" {
					path = "metadata.name"
				}
				fail(path, p.msg)
			}
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

var (
	yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)
)

func syntaxError(name string, err error) error {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		l, _ := strconv.Atoi(m[1])
		return &FileError{File: name, Line: l, Reason: "YAML syntax: " + m[2]}
	}
	return &FileError{File: name, Reason: "YAML syntax: " + err.Error()}
}

// typeError rewrites yaml.v3's decoding errors (unknown field, wrong type) with the valid fields.
func typeError(name string, docLine int, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return &FileError{File: name, Line: docLine, Reason: err.Error()}
	}
	var errs []error
	for _, e := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, &FileError{File: name, Line: docLine, Reason: e})
			continue
		}
		l, _ := strconv.Atoi(m[1])
		reason := m[2]
		errs = append(errs, &FileError{File: name, Line: l, Reason: reason})
	}
	return errors.Join(errs...)
}

func yamlFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(f.Tag.Get("yaml"), "inline") {
			out = append(out, yamlFields(f.Type)...)
			continue
		}
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	slices.Sort(out)
	return out
}

// lineOf finds the line of a dotted path ("spec.canary.match[0].modulo") in a document node,
// falling back to the deepest part found, then to def.
func lineOf(doc *yaml.Node, path string, def int) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := def
	for _, seg := range strings.Split(path, ".") {
		key, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			key = seg[:i]
			idx, _ = strconv.Atoi(seg[i+1 : len(seg)-1])
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// unknownFields reports every mapping key that is not a YAML field of t, with its line and the
// valid fields.
func unknownFields(file string, n *yaml.Node, t reflect.Type) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch {
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, c := range n.Content {
			errs = append(errs, unknownFields(file, c, t.Elem())...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 1; i < len(n.Content); i += 2 {
			errs = append(errs, unknownFields(file, n.Content[i], t.Elem())...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fieldType(t, k.Value)
			if !ok {
				errs = append(errs, &FileError{File: file, Line: k.Line, Reason: fmt.Sprintf("unknown field %q (valid here: %s)", k.Value, strings.Join(yamlFields(t), ", "))})
				continue
			}
			errs = append(errs, unknownFields(file, n.Content[i+1], ft)...)
		}
	}
	return errs
}

func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for f := range t.Fields() {
		tag := f.Tag.Get("yaml")
		if strings.Contains(tag, "inline") {
			if ft, ok := fieldType(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if n, _, _ := strings.Cut(tag, ","); n == name {
			return f.Type, true
		}
	}
	return nil, false
}
