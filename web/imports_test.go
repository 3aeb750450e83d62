package web

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 15, "narrow web.Backend": web speaks its own types (and the engine's public
// ones), never an internal package's, so a change inside the daemon cannot change the
// API's JSON by accident and the handlers are tested against a fake backend.
func TestWebImportsNoInternalPackage(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if strings.Contains(imp.Path.Value, "/remedy/internal/") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}
