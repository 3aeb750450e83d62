package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed defaults/*.yaml
var defaultFS embed.FS

// Set is a validated collection of policies, ready for the engine.
type Set struct {
	Policies []*Policy
	Files    []string
	// Warnings are legal but doubtful things; `remedy check --strict` fails on them.
	Warnings []Diagnostic
}

// ByName returns the policy with the given name.
func (s *Set) ByName(name string) *Policy {
	for _, p := range s.Policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// IsPolicyFile says whether a directory entry is read as policies: *.yaml and *.yml,
// except test files (*_test.yaml), which live beside the policies they test.
func IsPolicyFile(name string) bool {
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}

// Load reads policy files and directories (read in lexical order) and validates them
// together. On any error it returns Errors with every problem; the set is then nil.
func Load(paths ...string) (*Set, error) {
	var files []string
	var diags []Diagnostic
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			diags = append(diags, Diagnostic{Pos: Pos{File: p, Line: 1, Col: 1}, Message: fmt.Sprintf("cannot read: %v", unwrapPath(err))})
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			diags = append(diags, Diagnostic{Pos: Pos{File: p, Line: 1, Col: 1}, Message: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && IsPolicyFile(e.Name()) {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(p, n))
		}
	}
	contents := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			diags = append(diags, Diagnostic{Pos: Pos{File: f, Line: 1, Col: 1}, Message: fmt.Sprintf("cannot read: %v", unwrapPath(err))})
			continue
		}
		contents[f] = b
	}
	return build(files, contents, diags)
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// LoadOrDefaults is Load, or the embedded defaults when no path is given (empty paths
// count as none): what `remedy run`, `check` and `replay` do with an unset policy path.
func LoadOrDefaults(paths ...string) (*Set, error) {
	var given []string
	for _, p := range paths {
		if p != "" {
			given = append(given, p)
		}
	}
	if len(given) == 0 {
		return Defaults()
	}
	return Load(given...)
}

// Defaults returns the embedded default policies.
func Defaults() (*Set, error) {
	files, contents, err := DefaultFiles()
	if err != nil {
		return nil, err
	}
	return build(files, contents, nil)
}

// DefaultFiles returns the embedded default policy files by name ("defaults/x.yaml").
func DefaultFiles() ([]string, map[string][]byte, error) {
	entries, err := defaultFS.ReadDir("defaults")
	if err != nil {
		return nil, nil, err
	}
	var files []string
	contents := map[string][]byte{}
	for _, e := range entries {
		if !IsPolicyFile(e.Name()) {
			continue
		}
		name := "defaults/" + e.Name()
		b, err := defaultFS.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, name)
		contents[name] = b
	}
	sort.Strings(files)
	return files, contents, nil
}

// ParseFiles validates in-memory files as one set (for tests and the dashboard).
func ParseFiles(files []string, contents map[string][]byte) (*Set, error) {
	return build(files, contents, nil)
}

func build(files []string, contents map[string][]byte, diags []Diagnostic) (*Set, error) {
	var all []*Policy
	for _, f := range files {
		b, ok := contents[f]
		if !ok {
			continue
		}
		ps, ds := Parse(f, b)
		all = append(all, ps...)
		diags = append(diags, ds...)
	}
	checkSet(all, &diags)
	var errs, warns []Diagnostic
	for _, d := range diags {
		if d.Warning {
			warns = append(warns, d)
		} else {
			errs = append(errs, d)
		}
	}
	if len(errs) > 0 {
		sortDiags(errs)
		return nil, Errors(errs)
	}
	for _, p := range all {
		warns = append(warns, lint(p)...)
	}
	sortDiags(warns)
	return &Set{Policies: all, Files: files, Warnings: warns}, nil
}
