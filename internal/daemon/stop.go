package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/remedy-run/remedy/actions"
)

// A shutdown step that waits says what it waits for, as systemd's "A stop job is
// running for …": first after stopQuiet (a step that finishes at once says nothing),
// then every stopRepeat, each time with the time left before the step's bound.
const (
	stopQuiet  = time.Second
	stopRepeat = 5 * time.Second
)

// waitStep runs wait with a context that ends at bound and logs, while it runs,
// "stopping: waiting for <what()> (Ns left)" with the step's name. what is asked at
// each log line, so it names what is still pending; "" skips that line. It returns
// wait's error (ctx.Err() when the bound ran out).
func waitStep(log *slog.Logger, step string, bound time.Duration, what func() string, wait func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	deadline, _ := ctx.Deadline()
	done := make(chan error, 1)
	go func() { done <- wait(ctx) }()
	t := time.NewTimer(stopQuiet)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			if w := what(); w != "" {
				left := max(time.Until(deadline), 0).Round(time.Second)
				log.Info(fmt.Sprintf("stopping: waiting for %s (%s left)", w, left), "step", step, "left", left)
			}
			t.Reset(stopRepeat)
		}
	}
}

// stopActions is the engine step's wait for recovery actions in flight: up to
// stop_timeout, saying which; then they are abandoned (recorded as interrupted and
// reported to the engine, actions.Executor.Interrupt) so that a hung action costs the
// stop its bound, not the action's own timeout, and the stop is still clean. The error
// is only for attempts that did not even report after being interrupted.
func (d *Daemon) stopActions() error {
	inFlight := func() string { return describeRunning(d.exec.InFlight()) }
	if waitStep(d.log, "engine", d.cfg.StopTimeout, inFlight, d.exec.Wait) == nil || inFlight() == "" {
		// Nothing to abandon: with stop_timeout 0s the bound can end before Wait sees
		// that no action runs.
		return nil
	}
	d.log.Warn("stopping: abandoning recovery actions still running at stop_timeout; each is recorded as interrupted",
		"step", "engine", "stop_timeout", d.cfg.StopTimeout, "actions", inFlight())
	d.exec.Interrupt()
	// Interrupted attempts report at once; the bound is for one stuck writing its audit.
	if err := waitStep(d.log, "engine", 5*time.Second, inFlight, d.exec.Wait); err != nil {
		return fmt.Errorf("recovery actions did not report after being interrupted: %s", inFlight())
	}
	return nil
}

// describeRunning names attempts as "action RESTART_SERVICE on bot, action EXEC".
func describeRunning(rs []actions.Running) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		s := "action " + r.Action
		if r.Target != "" {
			s += " on " + r.Target
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// servicesUp names the supervised services still up, for the services step's log.
func (d *Daemon) servicesUp() string {
	var up []string
	for _, st := range d.sup.Status() {
		if st.Up {
			up = append(up, st.Name)
		}
	}
	if len(up) == 0 {
		return ""
	}
	return "services to stop: " + strings.Join(up, ", ")
}

// writerDrain is how long a writer may take, at shutdown, to write the rows it holds.
const writerDrain = 10 * time.Second

// rowWriter is a store writer as the shutdown runs it.
type rowWriter interface {
	Run(ctx context.Context, drain time.Duration) error
	Len() int
}

// runWriter runs w until ctx ends, then lets it write what it holds for up to drain,
// saying meanwhile how many rows wait ("stopping: waiting for 49 journal rows to be
// written (9s left)"), as the other shutdown steps do: a held write lock would otherwise
// keep the stop silent for the whole drain.
func runWriter(ctx context.Context, log *slog.Logger, name string, w rowWriter, drain time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, drain) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	what := func() string {
		if n := w.Len(); n > 0 {
			return fmt.Sprintf("%d %s rows to be written", n, name)
		}
		return ""
	}
	var err error
	waitStep(log, "writer "+name, drain, what, func(context.Context) error { err = <-done; return nil }) // Run's drain bounds it
	return err
}
