package policies

import (
	"fmt"
	"sort"
	"strings"
)

// Diagnostic is one error or warning about a policy file.
type Diagnostic struct {
	Pos     Pos
	Policy  string // empty when the problem is not inside a policy
	Message string
	Snippet string // expr's caret snippet for expression errors
	Warning bool
}

func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	if d.Warning {
		b.WriteString("warning: ")
	}
	if d.Policy != "" {
		fmt.Fprintf(&b, "policy %q: ", d.Policy)
	}
	b.WriteString(d.Message)
	return b.String()
}

// Errors is every error found while loading, in file order.
type Errors []Diagnostic

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func sortDiags(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
