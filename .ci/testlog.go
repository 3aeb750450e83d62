// Command testlog reads `go test -json` on stdin and prints what plain `go test` prints
// (each package's ok/FAIL line, a failing test's output, build errors), then the slowest
// packages and the 10 slowest tests, so CI shows where its time goes. It exits 1 if any
// test, package or build failed (CI also fails on go test's own status).
//
//	go test -race -count=1 -json ./... | go run .ci/testlog.go
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output, build-fail
}

type timing struct {
	name    string
	elapsed float64
	failed  bool
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	// A test's output is held until it ends: printed if it failed, dropped otherwise (as
	// plain go test does). Parallel tests interleave, hence one buffer per test.
	held := map[string][]string{}
	var tests, pkgs []timing
	failed := false
	for in.Scan() {
		line := in.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // not JSON: go's own message
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			out.WriteString(e.Output)
		case "build-fail":
			failed = true
		case "output":
			if e.Test == "" {
				if e.Output != "PASS\n" { // plain go test prints only the ok line
					out.WriteString(e.Output) // the package's ok/FAIL line, and output outside tests
				}
				continue
			}
			if strings.HasPrefix(e.Output, "=== ") {
				continue
			}
			held[key] = append(held[key], e.Output)
		case "pass", "skip":
			if e.Test == "" {
				pkgs = append(pkgs, timing{short(e.Package), e.Elapsed, false})
				continue
			}
			// A race report lands in the output of whichever test go's test2json saw
			// last, often one that passes while the tests it failed print only "race
			// detected during execution of test": print it wherever it is.
			if lines := held[key]; slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "WARNING: DATA RACE") }) {
				out.WriteString(strings.Join(lines, ""))
			}
			delete(held, key)
			if e.Action == "pass" && !strings.Contains(e.Test, "/") {
				tests = append(tests, timing{short(e.Package) + " " + e.Test, e.Elapsed, false})
			}
		case "fail":
			failed = true
			if e.Test == "" {
				// A package that dies (a panic, go test's timeout) leaves its running
				// tests without an end: their output says why.
				for k, lines := range held {
					if strings.HasPrefix(k, e.Package+" ") {
						out.WriteString(strings.Join(lines, ""))
						delete(held, k)
					}
				}
				pkgs = append(pkgs, timing{short(e.Package), e.Elapsed, true})
				continue
			}
			out.WriteString(strings.Join(held[key], ""))
			delete(held, key)
			if !strings.Contains(e.Test, "/") {
				tests = append(tests, timing{short(e.Package) + " " + e.Test, e.Elapsed, true})
			}
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(out, "testlog: reading go test's output: %v\n", err)
		failed = true
	}
	slowest := func(title string, ts []timing, n int) {
		slices.SortStableFunc(ts, func(a, b timing) int { return cmp.Compare(b.elapsed, a.elapsed) })
		fmt.Fprintf(out, "\n%s\n", title)
		for _, t := range ts[:min(n, len(ts))] {
			mark := ""
			if t.failed {
				mark = "  FAIL"
			}
			fmt.Fprintf(out, "%8.1f s  %s%s\n", t.elapsed, t.name, mark)
		}
	}
	slowest("the 5 slowest packages (wall time of each package's test binary):", pkgs, 5)
	slowest("the 10 slowest tests (top-level; a parallel test's time excludes its wait to start):", tests, 10)
	if failed {
		out.Flush()
		os.Exit(1)
	}
}

// short drops the module's path from a package's.
func short(pkg string) string {
	if s, ok := strings.CutPrefix(pkg, "github.com/remedy-run/remedy/"); ok {
		return s
	}
	if pkg == "github.com/remedy-run/remedy" {
		return "."
	}
	return pkg
}
