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
	// Codes are the event codes the files declare (top-level codes:), beside the
	// built-in catalogue.
	Codes []DeclaredCode
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
// together, without the embedded defaults. On any error it returns Errors with every
// problem; the set is then nil.
func Load(paths ...string) (*Set, error) {
	files, contents, diags := readPaths(paths)
	return build(files, contents, diags)
}

// readPaths reads files and directories; what cannot be read is a diagnostic.
func readPaths(paths []string) ([]string, map[string][]byte, []Diagnostic) {
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
	return files, contents, diags
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// LoadOrDefaults is LoadMerged with the defaults: the embedded defaults extended by the
// given files (empty paths count as none).
func LoadOrDefaults(paths ...string) (*Set, error) { return LoadMerged(false, paths...) }

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
	return buildFrom(nil, files, contents, diags)
}

// buildFrom parses the files and validates them as one set, over the defaults when
// given (see LoadMerged).
func buildFrom(defaults *defaultSource, files []string, contents map[string][]byte, diags []Diagnostic) (*Set, error) {
	parseAll := func(files []string, contents map[string][]byte) ([]*Policy, []DeclaredCode) {
		var all []*Policy
		var codes []DeclaredCode
		for _, f := range files {
			b, ok := contents[f]
			if !ok {
				continue
			}
			ps, cs, ds := parseFile(f, b)
			all, codes = append(all, ps...), append(codes, cs...)
			diags = append(diags, ds...)
		}
		return all, codes
	}
	all, codes := parseAll(files, contents)
	checkNames(all, &diags)
	checkCodes(codes, &diags)
	if defaults != nil {
		dps, _ := parseAll(defaults.files, defaults.contents)
		all = merge(dps, all, &diags)
		files = append(append([]string{}, defaults.files...), files...)
	} else {
		for _, p := range all {
			if p.switchOff {
				diags = append(diags, Diagnostic{Pos: p.Pos, Policy: p.Name,
					Message: "enabled: false alone switches off a default policy, but the defaults are not loaded here"})
			}
		}
	}
	checkFiring(all, &diags)
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
		warns = append(warns, lint(p, codes)...)
	}
	sortDiags(warns)
	return &Set{Policies: all, Files: files, Warnings: warns, Codes: codes}, nil
}
