package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/daemon"
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
		fmt.Fprintln(env.stderr, "Usage: remedy run [--config remedy.yaml] [--dry-run]\n\nRuns remedy: samples the host, evaluates the policies, recovers, alerts, and serves the\ndashboard and API (127.0.0.1:8080 by default). SIGHUP reloads the policies; SIGINT or\nSIGTERM shut down cleanly.")
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
	if path == "" {
		// The values in force: REMEDY_* variables may have changed the defaults.
		pol := cfg.Policies
		if pol == "" {
			pol = "embedded defaults"
		}
		log.Info("no configuration file: built-in defaults and REMEDY_* variables", "data", cfg.DataDir, "policies", pol, "listen", cfg.Listen)
	}
	d, err := daemon.New(ctx, cfg, log)
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
				d.Reload(ctx)
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
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(env.stderr, "Usage: remedy config check [FILE]\n\nValidates a configuration file (default ./remedy.yaml) and the environment; every error\nis reported as file:line:col.")
		return exitBadInput
	}
	path := "remedy.yaml"
	if len(args) > 1 {
		path = args[1]
	}
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		fmt.Fprintln(env.stdout, err)
		return exitFailed
	}
	if _, err := policies.LoadOrDefaults(cfg.Policies); err != nil {
		fmt.Fprintf(env.stdout, "%s: configuration ok, but its policies are not:\n", path)
		var perrs policies.Errors
		if errors.As(err, &perrs) {
			printDiags(env.stdout, perrs)
		} else {
			fmt.Fprintln(env.stdout, err)
		}
		return exitFailed
	}
	fmt.Fprintf(env.stdout, "%s: ok (listen %s, data %s, %d service(s))\n", path, cfg.Listen, cfg.DataDir, len(cfg.Services))
	return exitOK
}
