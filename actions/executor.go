package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// Attempt is one recovery attempt as the audit records it.
type Attempt struct {
	Policy, Instance string
	DecisionID       uint64
	Action           string
	Step, Attempt    int
	Params           Params
	Start            time.Time
	Duration         time.Duration
	Outcome          string // succeeded, failed, timeout, refused, skipped: …, dry_run
	Error            string
	Output           string
}

// AuditSink stores attempts (the store's audit table in the daemon).
type AuditSink interface {
	RecordAttempt(ctx context.Context, a Attempt) error
}

// ExecutorOptions configure an Executor.
type ExecutorOptions struct {
	Registry *Registry
	Audit    AuditSink          // may be nil
	Results  func(engine.Event) // receives ACTION_* events; must not block
	// DryRun records every attempt without running it and reports it as succeeded, so
	// the engine's view goes on as if it worked (like replay).
	DryRun bool
	// MaxOutput bounds the output kept per attempt (default 64 KiB).
	MaxOutput int
	Logger    *slog.Logger
	Now       func() time.Time // for tests; time.Now by default
}

// Executor runs the action decisions of the engine, one attempt each, and reports the
// outcome as an event. It never retries: the engine decides what follows. It is safe for
// concurrent use; Wait lets in-flight attempts finish, InFlight says which they are, and
// Interrupt abandons them (at a shutdown's bound).
type Executor struct {
	opts ExecutorOptions
	mu   sync.Mutex
	busy map[string]chan struct{} // target -> closed when its recovery ends
	wg   sync.WaitGroup

	running map[uint64]Running // by decision ID; guarded by mu
	halt    context.Context    // ends when Interrupt is called
	stop    context.CancelFunc
}

// NewExecutor returns an executor.
func NewExecutor(opts ExecutorOptions) *Executor {
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = 64 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Results == nil {
		opts.Results = func(engine.Event) {}
	}
	halt, stop := context.WithCancel(context.Background())
	return &Executor{opts: opts, busy: map[string]chan struct{}{}, running: map[uint64]Running{}, halt: halt, stop: stop}
}

// Target is what an attempt works on: the action and its target parameter. Two attempts
// with the same target never run at once.
func Target(action string, p Params) string {
	spec, _ := policies.LookupAction(action)
	if spec.Target == "" || p[spec.Target] == "" {
		return action
	}
	return action + ":" + p[spec.Target]
}

// Execute starts one attempt of an action decision in the background. Decisions that are
// not actions are ignored; skipped ones (dry_run policies, an open breaker) are recorded
// in the audit and not run.
func (x *Executor) Execute(ctx context.Context, d engine.Decision) {
	if d.Kind != engine.KindAction || d.Action == nil {
		return
	}
	if d.Action.Skipped != "" {
		x.record(ctx, x.attempt(d, x.opts.Now(), 0, "skipped: "+d.Action.Skipped, nil, ""))
		return
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		x.run(ctx, d)
	}()
}

// Wait blocks until every attempt in flight has finished and reported, or ctx ends.
func (x *Executor) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { x.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outputKey carries the attempt's output buffer in the context.
type outputKey struct{}

// decisionKey carries the decision in the context (for WEBHOOK's payload).
type decisionKey struct{}

// Output returns the writer an action may write its output to (kept in the audit); it
// discards when the action runs outside an executor.
func Output(ctx context.Context) *limitedBuffer {
	if b, ok := ctx.Value(outputKey{}).(*limitedBuffer); ok {
		return b
	}
	return &limitedBuffer{max: 0}
}

// DecisionFrom returns the decision that caused the attempt, if any.
func DecisionFrom(ctx context.Context) (engine.Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(engine.Decision)
	return d, ok
}

func (x *Executor) run(parent context.Context, d engine.Decision) {
	d = withLabelTarget(d)
	a := d.Action
	start := x.opts.Now()
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	defer context.AfterFunc(x.halt, cancel)()
	defer x.track(d, start)()
	// One recovery per target: wait for the one running, within this attempt's time.
	target := Target(a.Do, a.Params)
	release, err := x.lock(ctx, target)
	if err != nil {
		if x.halt.Err() != nil {
			x.interrupted(parent, d, start, "")
			return
		}
		x.finish(parent, d, start, engine.CodeActionTimeout, fmt.Errorf("target %s busy with another recovery: %w", target, err), "")
		return
	}
	defer release()
	if x.opts.DryRun {
		x.record(parent, x.attempt(d, start, 0, "dry_run", nil, ""))
		x.report(d, engine.CodeActionSucceeded, "dry run: not run", 0)
		return
	}
	action, err := x.opts.Registry.Get(a.Do)
	if err != nil {
		x.finish(parent, d, start, engine.CodeActionFailed, err, "")
		return
	}
	if ap, ok := action.(Applier); ok {
		if err := ap.Applies(ctx, a.Params); err != nil {
			if refused(err) {
				x.refuse(parent, d, start, err)
			} else {
				x.finish(parent, d, start, engine.CodeActionFailed, err, "")
			}
			return
		}
	}
	out := &limitedBuffer{max: x.opts.MaxOutput}
	actx := context.WithValue(context.WithValue(ctx, outputKey{}, out), decisionKey{}, d)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		done <- action.Run(actx, a.Params)
	}()
	select {
	case err = <-done:
		if err != nil && x.halt.Err() != nil {
			x.interrupted(parent, d, start, out.String())
			return
		}
		code := engine.CodeActionSucceeded
		switch {
		case err != nil && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil):
			code = engine.CodeActionTimeout
		case err != nil:
			code = engine.CodeActionFailed
		}
		x.finish(parent, d, start, code, err, out.String())
	case <-ctx.Done():
		if x.halt.Err() != nil {
			x.interrupted(parent, d, start, out.String())
			return
		}
		// The action ignores its deadline: report the timeout now; it is abandoned.
		x.finish(parent, d, start, engine.CodeActionTimeout, fmt.Errorf("no result within %v", timeout), out.String())
	}
}

func (x *Executor) lock(ctx context.Context, target string) (func(), error) {
	for {
		x.mu.Lock()
		ch, held := x.busy[target]
		if !held {
			ch = make(chan struct{})
			x.busy[target] = ch
			x.mu.Unlock()
			return func() {
				x.mu.Lock()
				delete(x.busy, target)
				x.mu.Unlock()
				close(ch)
			}, nil
		}
		x.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (x *Executor) finish(ctx context.Context, d engine.Decision, start time.Time, code string, err error, output string) {
	dur := x.opts.Now().Sub(start)
	outcome := map[string]string{engine.CodeActionSucceeded: "succeeded", engine.CodeActionFailed: "failed",
		engine.CodeActionTimeout: "timeout"}[code]
	x.record(ctx, x.attempt(d, start, dur, outcome, err, output))
	msg := ""
	if err != nil {
		msg = firstLine(err.Error())
	}
	x.report(d, code, msg, dur)
}

// refuse records an attempt that cannot apply to its target: outcome "refused", not
// run, reported as failed with outcome=refused so the engine does not retry the step.
func (x *Executor) refuse(ctx context.Context, d engine.Decision, start time.Time, err error) {
	x.record(ctx, x.attempt(d, start, 0, "refused", err, ""))
	x.report(d, engine.CodeActionFailed, "refused: "+firstLine(err.Error()), 0, engine.OutcomeRefused)
}

func (x *Executor) attempt(d engine.Decision, start time.Time, dur time.Duration, outcome string, err error, output string) Attempt {
	a := Attempt{Policy: d.Policy, Instance: d.Instance, DecisionID: d.ID, Action: d.Action.Do, Step: d.Action.Step,
		Attempt: d.Action.Attempt, Params: d.Action.Params, Start: start, Duration: dur, Outcome: outcome, Output: output}
	if err != nil {
		a.Error = err.Error()
	}
	return a
}

func (x *Executor) record(ctx context.Context, a Attempt) {
	x.opts.Logger.Info("recovery attempt", "policy", a.Policy, "instance", a.Instance, "action", a.Action,
		"step", a.Step, "attempt", a.Attempt, "outcome", a.Outcome, "duration", a.Duration, "error", a.Error)
	if x.opts.Audit == nil {
		return
	}
	// The audit must not be lost to a cancelled parent: give it its own short deadline.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := x.opts.Audit.RecordAttempt(actx, a); err != nil {
		x.opts.Logger.Error("audit record lost", "policy", a.Policy, "action", a.Action, "error", err)
	}
}

func (x *Executor) report(d engine.Decision, code, msg string, dur time.Duration, outcome ...string) {
	labels := map[string]string{
		engine.LabelPolicy: d.Policy, engine.LabelInstance: d.Instance, engine.LabelDecision: strconv.FormatUint(d.ID, 10),
		engine.LabelAction: d.Action.Do, engine.LabelStep: strconv.Itoa(d.Action.Step), engine.LabelAttempt: strconv.Itoa(d.Action.Attempt),
	}
	if len(outcome) > 0 {
		labels[engine.LabelOutcome] = outcome[0]
	}
	x.opts.Results(engine.Event{Time: x.opts.Now(), Code: code, Source: "executor", Message: msg, Value: dur.Seconds(), Labels: labels})
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// limitedBuffer keeps the first max bytes written and counts the rest.
type limitedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped int
}

// Write keeps what fits and drops the rest; it never fails.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - b.buf.Len()
	if room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	if len(p) > room {
		b.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return b.buf.String() + fmt.Sprintf("\n[%d more bytes not kept]", b.dropped)
	}
	return b.buf.String()
}

// withLabelTarget gives an action whose spec takes its target from the decision's labels
// (TargetFromLabel) that label's value, when the policy left the target out.
func withLabelTarget(d engine.Decision) engine.Decision {
	spec, _ := policies.LookupAction(d.Action.Do)
	v := d.Labels[spec.Target]
	if !spec.TargetFromLabel || v == "" || d.Action.Params[spec.Target] != "" {
		return d
	}
	a := *d.Action
	a.Params = maps.Clone(a.Params)
	if a.Params == nil {
		a.Params = map[string]string{}
	}
	a.Params[spec.Target] = v
	d.Action = &a
	return d
}
