package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/remedy-run/remedy/internal/drill"
	"github.com/remedy-run/remedy/web"
)

func runDrill(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	cfgPath := fs.String("config", "", "configuration file, for the address and the token (default: ./remedy.yaml if it exists)")
	url := fs.String("url", "", "the daemon's address (default: from the configuration's listen)")
	token := fs.String("token", "", "the API token (default: from the configuration, token_env or REMEDY_TOKEN)")
	seconds := fs.Int("seconds", 0, "how long the fault lasts: database (default 10), queue (default 600, or until cleared)")
	service := fs.String("service", "", "service: which one to kill (default: the only one)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up watching after this long")
	alertWait := fs.Duration("alert-wait", 75*time.Second, "after recovery, keep watching this long for an alert")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, `Usage: remedy drill [flags] SCENARIO

A fire drill against a running remedy: the daemon injects a real, reversible fault and
this command reports whether the policies detected it, recovered and alerted, and how
long each took. It needs the API token (drills are refused on a daemon without one).

Scenarios:
  whatsapp   cut the WhatsApp socket under the client (as a network failure would)
  database   hold remedy.db's write lock from another connection for --seconds
  queue      stall one inbound item per worker until the queue-stuck policy clears them
  service    SIGKILL a supervised service (--service NAME)

Exit status: 0 detected and recovered, 1 not, 2 bad input or the drill was refused.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 || !slices.Contains(web.DrillScenarios, fs.Arg(0)) {
		fs.Usage()
		return exitBadInput
	}
	cfg, _, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy drill: %v\n", err)
		return exitBadInput
	}
	base := *url
	if base == "" {
		base = "http://" + strings.Replace(cfg.Listen, "0.0.0.0:", "127.0.0.1:", 1)
	}
	tok := *token
	if tok == "" {
		tok = cfg.Token
	}
	c := &drill.Client{Base: base, Token: tok}
	st, err := c.Start(ctx, web.DrillRequest{Scenario: fs.Arg(0), Seconds: *seconds, Service: *service})
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy drill: %v\n", err)
		return exitBadInput
	}
	fmt.Fprintf(env.stderr, "drill %s started: %s; watching (up to %s)…\n", st.Scenario, st.Detail, *timeout)
	rep, err := c.Watch(ctx, st, drill.WatchOptions{Timeout: *timeout, AlertWait: *alertWait})
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy drill: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.Write(env.stdout)
	}
	if !rep.Passed() {
		return exitFailed
	}
	return exitOK
}
