package repocheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// RegistryTypeConstants returns every Go constant in fsys, outside the table directory, that
// declares a registry type: a constant whose name says it is a type or a registry ("TypeNacos",
// "RegistryZookeeper", "zkType") and whose value is one of the type names. The registry table
// (registry/registries) is the one place a type is declared; a second declaration is how the three
// differing lists this replaced came about. Names in allowed ("internal/benchestate.RegistryNacos")
// are constants that only look like one, such as a registry's configured name in a fixture.
func RegistryTypeConstants(fsys fs.FS, tableDir string, types, allowed []string) ([]Problem, error) {
	var problems []Problem
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains(skippedDirs, d.Name()) || p == tableDir) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) || !looksLikeRegistryType(name.Name) || slices.Contains(allowed, path.Dir(p)+"."+name.Name) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					if v, err := strconv.Unquote(lit.Value); err == nil && slices.Contains(types, v) {
						problems = append(problems, Problem{File: p, Line: fset.Position(name.Pos()).Line, Ref: name.Name,
							Why: "declares registry type " + strconv.Quote(v) + " outside " + tableDir + ": use the registry table"})
					}
				}
			}
		}
		return nil
	})
	return problems, err
}

func looksLikeRegistryType(name string) bool {
	l := strings.ToLower(name)
	return strings.Contains(l, "type") || strings.HasPrefix(l, "registry")
}
