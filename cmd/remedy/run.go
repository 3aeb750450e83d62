package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/policies"
)

// loadConfig loads the --config file, or ./remedy.yaml if it exists, or the built-in
// defaults; it returns the path it used ("" for the defaults).
func loadConfig(flagPath string) (*config.Config, string, error) {
	path := flagPath
	if path == "" {
		if _, err := os.Stat("remedy.yaml"); err == nil {
			path = "remedy.yaml"
		}
	}
	cfg, err := config.Load(path, os.Getenv)
	return cfg, path, err
}

func runRun(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	cfgPath := fs.String("config", "", "configuration file (default: ./remedy.yaml if it exists, else built-in defaults)")
	dryRun := fs.Bool("dry-run", false, "decide and record every action, run none")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy run [--config remedy.yaml] [--dry-run]\n\nRuns remedy: samples the host, evaluates the policies, recovers, alerts, and serves the\ndashboard and API (127.0.0.1:8080 by default). SIGHUP reloads the policies and the WhatsApp sessions; SIGINT or\nSIGTERM shut down cleanly.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	cfg, path, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy run: configuration:\n%v\n", err)
		return exitBadInput
	}
	if *dryRun {
		cfg.DryRun = true
	}
	log := newLogger(env, cfg.Log)
	// The first line says what this remedy will use, after the environment's overrides.
	source := path
	if source == "" {
		source = "no configuration file (built-in defaults and REMEDY_* variables)"
	}
	log.Info("remedy starting", "version", versionString(), "config", source, "listen", cfg.Listen, "data", cfg.DataDir,
		"policies", policySource(cfg))
	// remedy run is the embedding package with the configuration's webhook handler.
	d, err := bot.New(ctx, bot.Config{File: path, DryRun: cfg.DryRun, Logger: log})
	if err != nil {
		var perrs policies.Errors
		if errors.As(err, &perrs) {
			printDiags(env.stderr, perrs)
		} else {
			fmt.Fprintf(env.stderr, "remedy run: %v\n", err)
		}
		return exitFailed
	}
	if err := d.Listen(); err != nil {
		fmt.Fprintf(env.stderr, "remedy run: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(env.stderr, "remedy: dashboard on http://%s/\n", d.Addr())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.Reload(ctx) // sessions, then policies; errors are logged and shown, the running ones go on
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(env.stderr, "remedy run: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func newLogger(env *cliEnv, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}

func runConfig(ctx context.Context, args []string, env *cliEnv) int {
	usage := "Usage: remedy config check [--bind] [FILE | --config FILE]\n\nValidates a configuration file (default ./remedy.yaml; with none, the built-in defaults),\nthe environment and the policies it names, as `remedy run` would; every error of every\nstage is reported at once, as file:line:col. --bind also checks that the listen address\ncan be bound now (it fails while a remedy runs there)."
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(env.stderr, usage)
		return exitBadInput
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	bind := fs.Bool("bind", false, "also bind the listen address and close it at once")
	configFlag := fs.String("config", "", "the configuration file, as remedy run --config takes it (or give it as FILE)")
	fs.Usage = func() { fmt.Fprintln(env.stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && *configFlag != "") {
		fs.Usage()
		return exitBadInput
	}
	flagPath := cmp.Or(*configFlag, fs.Arg(0))
	path := flagPath
	if path == "" {
		if _, err := os.Stat("remedy.yaml"); err == nil {
			path = "remedy.yaml"
		}
	}
	// Every stage's errors in one report: the configuration's, then the policies' it
	// names (loaded even when the configuration has errors, from what did decode).
	cfg, cerr := config.LoadAll(path, os.Getenv)
	var cerrs config.Errors
	if cerr != nil && !errors.As(cerr, &cerrs) {
		fmt.Fprintln(env.stdout, cerr) // unreadable or not YAML: nothing more to check
		return exitFailed
	}
	for _, e := range cerrs {
		fmt.Fprintln(env.stdout, e)
	}
	failed := len(cerrs) > 0
	if cfg == nil {
		return exitFailed
	}
	if *bind && len(cerrs) == 0 {
		if err := config.BindListen(cfg.Listen); err != nil {
			fmt.Fprintf(env.stdout, "%s: listen: %v\n", cfg.Position("listen"), err)
			failed = true
		}
	}
	set, err := loadPolicies(cfg)
	if err != nil {
		var perrs policies.Errors
		if errors.As(err, &perrs) {
			printDiags(env.stdout, perrs)
		} else {
			fmt.Fprintln(env.stdout, err)
		}
		failed = true
	}
	name := path
	if name == "" {
		name = "no remedy.yaml"
	}
	switch {
	case failed:
		fmt.Fprintf(env.stdout, "%s: not valid: remedy run would refuse it\n", name)
		return exitFailed
	case path == "":
		fmt.Fprintf(env.stdout, "no remedy.yaml: the built-in defaults would run (listen %s, data in %s)\n", cfg.Listen, dirName(cfg.DataDir))
	default:
		fmt.Fprintf(env.stdout, "%s: ok (listen %s, data in %s, %d service(s))\n", path, cfg.Listen, dirName(cfg.DataDir), len(cfg.Services))
	}
	if len(cfg.SessionList) > 0 {
		for _, s := range cfg.Sessions() {
			handler := "no handler"
			if s.Handler != nil {
				// Its URL as the sessions API shows it: a password or ?key= in it is a
				// secret, and this output ends up in CI logs.
				handler = "handler " + cmp.Or(publicURL(s.Handler.URL), "(set)")
			}
			fmt.Fprintf(env.stdout, "session %s: store %s, %s, %d admin(s)\n", s.Name, s.Store, handler, len(s.Admins))
		}
	}
	fmt.Fprintln(env.stdout, set.Summary())
	return exitOK
}

// loadPolicies loads the policy set the configuration names, as the daemon does.
func loadPolicies(cfg *config.Config) (*policies.Set, error) {
	return cfg.LoadPolicies()
}

// policySource says where the policies come from, for the start log.
func policySource(cfg *config.Config) string {
	switch {
	case cfg.Policies == "":
		return "embedded defaults"
	case !cfg.DefaultPolicies:
		return cfg.Policies + " (default_policies: false)"
	}
	return "embedded defaults + " + cfg.Policies
}

// dirName writes a relative directory as ./data/, so "data in data" reads as a path.
func dirName(dir string) string {
	if !filepath.IsAbs(dir) && !strings.HasPrefix(dir, ".") {
		dir = "./" + dir
	}
	return strings.TrimSuffix(dir, "/") + "/"
}

// publicURL is u without what may hold a secret (user:password@, ?key=, #…); "" when u
// does not parse.
func publicURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || u == "" {
		return ""
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
	return p.String()
}
