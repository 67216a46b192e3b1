package rules

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LoadFiles reads rule files; a directory contributes its *.yaml and *.yml files (not
// recursively, hidden ones skipped: a ConfigMap's ..data entries), in name order. Any problem
// fails the whole load, naming the file, the line and the reason, so the caller keeps its last
// good rules. Rule names must be unique across files.
func LoadFiles(paths []string) ([]Rule, error) {
	var out []Rule
	var errs []error
	seen := map[string]string{}
	for _, f := range expand(paths, &errs) {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule file: %w", err))
			continue
		}
		rs, err := ParseFile(f, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			if prev, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("rule %s at %s is already defined at %s", r.Name, r.Origin, prev))
				continue
			}
			seen[r.Name] = r.Origin
			out = append(out, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func expand(paths []string, errs *[]error) []string {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("rule file: %w", err))
			continue
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("rule directory: %w", err))
			continue
		}
		var files []string
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				continue
			}
			files = append(files, filepath.Join(p, n))
		}
		slices.Sort(files)
		out = append(out, files...)
	}
	return out
}

//go:embed example.yaml
var example []byte

// ExampleInline returns the example rules (example.yaml) as inline configuration rules: what the
// bridge runs when it starts without a configuration.
func ExampleInline() []InlineRule {
	rs, err := ParseFile("example.yaml", example)
	if err != nil {
		panic("rules: the embedded example does not parse: " + err.Error()) // TestExample guards it
	}
	out := make([]InlineRule, len(rs))
	for i, r := range rs {
		out[i] = InlineRule{Name: r.Name, Spec: r.Spec}
	}
	return out
}
