// Package repocheck holds checks on the repository itself rather than on the bridge: today, that
// every document the code and docs point a maintainer to is in the repository.
//
// A reference is
//   - in a Markdown file, the target of a link, [text](target) or a reference definition
//     [label]: target, unless it is a URL; relative to the Markdown file (or to the repository
//     root when it starts with '/'). A #fragment must name a heading of the target (GitHub's
//     anchor rules) when the target is Markdown.
//   - in any checked file, a path ending in ".md" mentioned in the text, such as docs/scale.md,
//     docs/registries.md#hosts or README.md. A path with a directory is checked when its first
//     element exists at the repository root or beside the file (so e2e/... and docs/... are
//     checked, while a path inside another repository, e.g. apache/dubbo-website's
//     content/en/..., is not); it resolves against the file's directory, then the root. A bare
//     name resolves the same way.
package repocheck

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Problem is one reference that does not resolve.
type Problem struct {
	File string // slash-separated, relative to the repository root
	Line int
	Ref  string // the reference as written
	Why  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Ref, p.Why) }

// Checked is what the check reads: file name suffixes, and directories it never enters
// (fixtures, vendored and generated trees, hidden directories such as .git).
var (
	checkedSuffixes = []string{".go", ".md", ".sh", ".yaml", ".yml"}
	skippedDirs     = []string{"testdata", "vendor", "node_modules"}
)

var (
	// mdLink is an inline link or image target, with an optional title.
	mdLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// mdRefDef is a reference-style link definition.
	mdRefDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	// mention is a path to a Markdown file written in prose or a comment, with an optional
	// fragment. It must not follow a character that would make it part of a longer token (a URL,
	// a longer path).
	mention = regexp.MustCompile(`(?:^|[^\w./:#-])((?:\.{1,2}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.md)(#[\w-]+)?\b`)
	urlLike = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	heading = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	fence   = regexp.MustCompile("^ {0,3}(```|~~~)")
)

// Check walks the repository at root and returns every reference that does not resolve.
func Check(root string) ([]Problem, error) {
	c := &checker{root: root, anchors: map[string]map[string]bool{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || slices.Contains(skippedDirs, name)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !slices.ContainsFunc(checkedSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return c.file(filepath.ToSlash(rel))
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", root, err)
	}
	return c.problems, nil
}

type checker struct {
	root     string
	anchors  map[string]map[string]bool // Markdown file -> its heading anchors
	problems []Problem
}

func (c *checker) file(rel string) error {
	b, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, err)
	}
	isMD := strings.HasSuffix(rel, ".md")
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		linked := map[string]bool{}
		if isMD {
			var targets []string
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := mdRefDef.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, t := range targets {
				linked[t] = true
				c.link(rel, n, t)
			}
		}
		for _, m := range mention.FindAllStringSubmatch(line, -1) {
			if linked[m[1]+m[2]] {
				continue // already checked as a link target
			}
			c.mention(rel, n, m[1], strings.TrimPrefix(m[2], "#"))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", rel, err)
	}
	return nil
}

// link checks a Markdown link target written in file rel.
func (c *checker) link(rel string, line int, target string) {
	if urlLike.MatchString(target) || strings.HasPrefix(target, "//") {
		return // a URL (https:, mailto:, ...): outside the repository by definition
	}
	p, frag, _ := strings.Cut(target, "#")
	if p == "" { // #fragment within the same file
		c.fragment(rel, line, target, rel, frag)
		return
	}
	var resolved string
	if strings.HasPrefix(p, "/") {
		resolved = path.Clean(strings.TrimPrefix(p, "/"))
	} else {
		resolved = path.Join(path.Dir(rel), p)
	}
	if !c.exists(resolved) {
		c.add(rel, line, target, "no such file or directory in the repository (resolved to "+resolved+")")
		return
	}
	c.fragment(rel, line, target, resolved, frag)
}

// mention checks a Markdown path written in prose or a comment of file rel.
func (c *checker) mention(rel string, line int, p, frag string) {
	ref := p
	if frag != "" {
		ref += "#" + frag
	}
	dir := path.Dir(rel)
	candidates := []string{path.Join(dir, p)}
	if !strings.HasPrefix(p, ".") {
		first, _, hasDir := strings.Cut(p, "/")
		if hasDir && !c.exists(first) && !c.exists(path.Join(dir, first)) {
			return // a path in some other repository
		}
		if root := path.Clean(p); root != candidates[0] {
			candidates = append(candidates, root)
		}
	}
	for _, cand := range candidates {
		if c.exists(cand) {
			c.fragment(rel, line, ref, cand, frag)
			return
		}
	}
	c.add(rel, line, ref, "no such document in the repository (tried "+strings.Join(candidates, ", ")+")")
}

// fragment checks that frag names a heading of the Markdown file target.
func (c *checker) fragment(rel string, line int, ref, target, frag string) {
	if frag == "" || !strings.HasSuffix(target, ".md") {
		return
	}
	anchors, err := c.headings(target)
	if err != nil {
		c.add(rel, line, ref, err.Error())
		return
	}
	if !anchors[frag] {
		c.add(rel, line, ref, "no heading with anchor #"+frag+" in "+target)
	}
}

func (c *checker) exists(rel string) bool {
	if rel == "" || rel == "." || strings.HasPrefix(rel, "../") || rel == ".." {
		return false // outside the repository
	}
	_, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(rel)))
	return err == nil
}

func (c *checker) add(rel string, line int, ref, why string) {
	c.problems = append(c.problems, Problem{File: rel, Line: line, Ref: ref, Why: why})
}

// headings returns the anchors GitHub gives the headings of a Markdown file.
func (c *checker) headings(rel string) (map[string]bool, error) {
	if a, ok := c.anchors[rel]; ok {
		return a, nil
	}
	b, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("reading %s for its headings: %w", rel, err)
	}
	a := Anchors(string(b))
	c.anchors[rel] = a
	return a, nil
}

// Anchors returns the anchors of the ATX headings of a Markdown text, as GitHub makes them:
// inline links reduced to their text, lower case, punctuation removed, spaces turned into '-',
// and "-1", "-2", ... added to repeats. Headings inside fenced code blocks do not count.
func Anchors(md string) map[string]bool {
	out := map[string]bool{}
	inFence := false
	for line := range strings.SplitSeq(md, "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := Slug(m[2])
		anchor := slug
		for i := 1; out[anchor]; i++ {
			anchor = fmt.Sprintf("%s-%d", slug, i)
		}
		out[anchor] = true
	}
	return out
}

var inlineLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

// Slug is GitHub's anchor for a heading text.
func Slug(text string) string {
	text = inlineLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
