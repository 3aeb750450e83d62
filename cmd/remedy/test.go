package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/remedy-run/remedy/policytest"
)

func runTest(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	run := fs.String("run", "", "run only tests whose name matches this regular expression")
	junit := fs.String("junit", "", "write JUnit XML results to this file")
	seed := fs.Uint64("seed", 1, "seed for backoff jitter")
	verbose := fs.Bool("v", false, "print every test's full timeline")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy test [flags] FILE|DIR...\n\nRuns policy test files (a DIR means its *_test.yaml files). Exit 0: all passed; 1: a test failed; 2: bad input.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitBadInput
	}
	opts := policytest.Options{Seed: *seed, Verbose: *verbose}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(env.stderr, "remedy test: --run: %v\n", err)
			return exitBadInput
		}
		opts.Run = re
	}
	files, err := testFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy test: %v\n", err)
		return exitBadInput
	}
	var all []policytest.CaseResult
	bad := false
	for _, f := range files {
		tf, set, err := policytest.LoadTestFile(f)
		if err != nil {
			fmt.Fprintf(env.stdout, "%s: cannot run:\n%v\n", f, err)
			bad = true
			continue
		}
		for _, r := range policytest.RunFile(tf, set, opts) {
			all = append(all, r)
			status := "PASS"
			if !r.Passed() {
				status = "FAIL"
			}
			fmt.Fprintf(env.stdout, "--- %s: %s (%s)\n", status, r.Name, r.Pos)
			for _, msg := range r.Failures {
				fmt.Fprintf(env.stdout, "    %s\n", strings.ReplaceAll(msg, "\n", "\n    "))
			}
			if opts.Verbose || !r.Passed() {
				fmt.Fprintf(env.stdout, "    timeline:\n")
				for _, line := range strings.Split(strings.TrimRight(policytest.FormatTimeline(r.Timeline, r.Start), "\n"), "\n") {
					fmt.Fprintf(env.stdout, "      %s\n", line)
				}
			}
		}
	}
	if *junit != "" {
		fh, err := os.Create(*junit)
		if err == nil {
			err = policytest.WriteJUnit(fh, all)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "remedy test: --junit: %v\n", err)
			return exitBadInput
		}
	}
	failed := 0
	for _, r := range all {
		if !r.Passed() {
			failed++
		}
	}
	fmt.Fprintf(env.stdout, "%d passed, %d failed\n", len(all)-failed, failed)
	switch {
	case bad:
		return exitBadInput
	case failed > 0:
		return exitFailed
	}
	return exitOK
}

// testFiles expands directories to their *_test.yaml and *_test.yml files.
func testFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		for _, pat := range []string{"*_test.yaml", "*_test.yml"} {
			m, _ := filepath.Glob(filepath.Join(a, pat))
			out = append(out, m...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no test files in %s", strings.Join(args, " "))
	}
	return out, nil
}
