// Command remedy is the self-healing runtime for WhatsApp bots. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by the subcommands.
const (
	exitOK       = 0
	exitFailed   = 1 // errors found, tests failed
	exitBadInput = 2 // bad flags or unreadable input
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, env *cliEnv) int
}

// cliEnv is what a subcommand may touch, so tests can run them in-process.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"run", "run remedy: monitor, recover, alert, serve the dashboard (no config needed)", runRun},
		{"check", "validate policy files (exit 1 on errors; --strict also fails on warnings)", runCheck},
		{"test", "run policy test files offline against scripted inputs", runTest},
		{"replay", "feed recorded events and samples through policies, with no side effects", runReplay},
		{"codes", "list event codes, metrics, functions and actions", runCodes},
		{"pair", "link remedy to the bot's WhatsApp account (QR code, or --phone for a code)", runPair},
		{"deadletter", "list or replay the items taken out of their queues", runDeadletter},
		{"config", "check a configuration file: remedy config check [FILE]", runConfig},
		{"drill", "fire drill: inject a real fault into a running remedy and time the recovery", runDrill},
		{"version", "print the version, the VCS revision it was built from and the Go version", runVersion},
	}
}

// Main runs the subcommand named by args[0] and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) > 0 && args[0] == "--version" {
		args = []string{"version"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitBadInput
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], env)
		}
	}
	fmt.Fprintf(stderr, "remedy: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitBadInput
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "remedy — a self-healing runtime for WhatsApp bots\n\nUsage: remedy COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'remedy COMMAND -h' for a command's flags.")
}
