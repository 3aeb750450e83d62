package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/remedy-run/remedy/policies"
)

func runCheck(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	strict := fs.Bool("strict", false, "also fail on warnings (unknown codes, steps without timeouts, unreachable steps, policies that can never fire)")
	noDefaults := fs.Bool("no-defaults", false, "check the files alone, as remedy runs them with default_policies: false")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy check [--strict] [--no-defaults] [PATH...]\n\nValidates policy files and directories together, over the embedded defaults as remedy\nruns them (a policy of a default's name replaces it; name + enabled: false switches it\noff); with no PATH, the embedded defaults alone.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	set, err := policies.LoadMerged(*noDefaults, fs.Args()...)
	if err != nil {
		var errs policies.Errors
		if errors.As(err, &errs) {
			printDiags(env.stdout, errs)
			fmt.Fprintf(env.stdout, "%d error(s); the policies were not accepted\n", len(errs))
		} else {
			fmt.Fprintf(env.stdout, "%v\n", err)
		}
		return exitFailed
	}
	printDiags(env.stdout, set.Warnings)
	fmt.Fprintf(env.stdout, "%s\n", set.Summary())
	fmt.Fprintf(env.stdout, "%d policies in %d file(s): ok", len(set.Policies), len(set.Files))
	if n := len(set.Warnings); n > 0 {
		fmt.Fprintf(env.stdout, ", %d warning(s)", n)
	}
	fmt.Fprintln(env.stdout)
	if *strict && len(set.Warnings) > 0 {
		fmt.Fprintln(env.stdout, "--strict: warnings fail the check")
		return exitFailed
	}
	return exitOK
}

func printDiags(w io.Writer, ds []policies.Diagnostic) {
	for _, d := range ds {
		fmt.Fprintln(w, d.String())
		if d.Snippet != "" {
			fmt.Fprintln(w, strings.TrimPrefix(strings.ReplaceAll(d.Snippet, "\n", "\n    "), "\n"))
		}
	}
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitBadInput
}
