package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/remedy-run/remedy/policies"
)

func runCodes(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("codes", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy codes [POLICY_PATH...]\n\nLists remedy's event codes, metrics, actions and functions, and the event codes the\npolicy files declare under codes: (a bot's own).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var declared []policies.DeclaredCode
	if fs.NArg() > 0 {
		set, err := policies.LoadMerged(true, fs.Args()...)
		if err != nil {
			fmt.Fprintln(env.stderr, err)
			return exitFailed
		}
		declared = set.Codes
	}
	w := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT CODE\tSOURCE\tLABELS\tMEANING")
	for _, c := range policies.Codes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Code, c.Source, c.Labels, c.Description)
	}
	for _, c := range declared {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Code, c.Source, c.Labels, c.Description)
	}
	fmt.Fprintln(w, "\nMETRIC\tUNIT\t\tMEANING")
	for _, m := range policies.Metrics {
		fmt.Fprintf(w, "%s\t%s\t\t%s\n", m.Name, m.Unit, m.Description)
	}
	fmt.Fprintln(w, "\nACTION\tPARAMETERS\t\tWHAT IT DOES")
	for _, s := range policies.ActionSpecs() {
		fmt.Fprintf(w, "%s\t%s\t\t%s\n", s.Name, s.ParamNames(), s.Description)
	}
	fmt.Fprintln(w, "\nFUNCTION\t\t\tRETURNS")
	for _, f := range [][2]string{
		{`rate("metric", "5m")`, "per-second increase over the window (counter resets handled)"},
		{`increase("metric", "10m")`, "increase over the window"},
		{`avg_over("metric", "5m")`, "average of the samples in the window"},
		{`max_over("metric", "5m")`, "largest sample in the window"},
		{`min_over("metric", "5m")`, "smallest sample in the window"},
		{`count("CODE", "10m")`, "events of CODE in the window, the current one included"},
		{`since("CODE")`, "seconds since the last CODE event (+Inf if none)"},
		{`firing("policy")`, "whether any instance of the policy is firing"},
		{`hour()`, "hour of the input's time in the configured time zone (0-23)"},
		{`weekday()`, "day of the week of the input's time (0 = Sunday)"},
	} {
		fmt.Fprintf(w, "%s\t\t\t%s\n", f[0], f[1])
	}
	if err := w.Flush(); err != nil {
		return exitFailed
	}
	return exitOK
}
