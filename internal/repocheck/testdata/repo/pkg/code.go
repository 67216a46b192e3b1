// Package pkg is a fixture for the repocheck tests.
package pkg

// Good: docs/a.md and docs/a.md#second-part and README.md.
// Broken: docs/gone.md, docs/a.md#not-a-heading, NOTES.md section 5.
// Another repository's file, not checked: apache/dubbo-website content/en/docs3-v2/brief.md.
// Not paths: *.md, filepath.Ext(".md"), https://example.com/docs/README.md.
const X = 1
