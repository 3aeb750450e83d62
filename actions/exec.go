package actions

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remedy-run/remedy/internal/child"
)

// runCommand is EXEC: a command written in the policy file, run with env as its whole
// environment, in its own process group so that a timeout kills everything it started
// and nothing it started outlives the attempt, with its output kept in the audit. No
// shell is involved unless the policy says shell: true.
func runCommand(ctx context.Context, p Params, env []string) error {
	var argv []string
	if shell, _ := strconv.ParseBool(p["shell"]); shell {
		argv = []string{"/bin/sh", "-c", p["command"]}
	} else {
		var err error
		if argv, err = splitWords(p["command"]); err != nil {
			return err
		}
	}
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a shell's children must not outlive the attempt.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	out := Output(ctx)
	if n, err := strconv.Atoi(p["max_output"]); err == nil && n > 0 && n < out.max {
		out.max = n
	}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if cmd.Process != nil && child.Alive(cmd.Process.Pid) {
		// The attempt is over: what it left running in its group (`cmd &`) ends with it.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = child.Kill(kctx, cmd.Process.Pid)
		cancel()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", argv[0], ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// splitWords splits a command line on spaces; single and double quotes group words and
// a backslash escapes the next character. It is not a shell: nothing is expanded.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("command %q: unterminated quote or escape", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
