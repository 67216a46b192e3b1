package repocheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// E2EImports returns every import of the module's e2e tree (real servers, test harnesses) by a
// non-test Go file outside e2e/: production code must not link test servers in.
func E2EImports(fsys fs.FS, module string) ([]Problem, error) {
	var problems []Problem
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "e2e" || (p != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains(skippedDirs, d.Name()))) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == module+"/e2e" || strings.HasPrefix(path, module+"/e2e/") {
				problems = append(problems, Problem{File: p, Line: fset.Position(imp.Pos()).Line, Ref: path,
					Why: "production code imports the e2e tree: move the helper under e2e/ or drop the import"})
			}
		}
		return nil
	})
	return problems, err
}
