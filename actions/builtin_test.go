package actions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// fake is a subsystem that succeeds, fails or hangs until its context ends.
type fake struct {
	mode  string // ok | fail | hang
	calls int
	mu    sync.Mutex
}

func (f *fake) do(ctx context.Context) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	switch f.mode {
	case "fail":
		return errors.New("subsystem said no")
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fake) Reconnect(ctx context.Context) error { return f.do(ctx) }
func (f *fake) Reopen(ctx context.Context) error    { return f.do(ctx) }
func (f *fake) Clear(ctx context.Context, q string, older time.Duration, reason string) (int, error) {
	return 3, f.do(ctx)
}
func (f *fake) Has(q string) bool                                                   { return q != "jobs" }
func (f *fake) Restart(ctx context.Context, name string, grace time.Duration) error { return f.do(ctx) }
func (f *fake) ResetState(ctx context.Context, scope string, ttl time.Duration) (int, error) {
	return 2, f.do(ctx)
}
func (f *fake) CleanDB(ctx context.Context) (string, error)      { return "rebuilt", f.do(ctx) }
func (f *fake) PruneMetrics(ctx context.Context) (string, error) { return "pruned", f.do(ctx) }
func (f *fake) PruneMedia(ctx context.Context) (string, error)   { return "uploads deleted", f.do(ctx) }
func (f *fake) Notify(ctx context.Context, sev, text string, d engine.Decision) error {
	return f.do(ctx)
}

// audit collects attempts.
type audit struct {
	mu       sync.Mutex
	attempts []Attempt
}

func (a *audit) RecordAttempt(ctx context.Context, at Attempt) error {
	a.mu.Lock()
	a.attempts = append(a.attempts, at)
	a.mu.Unlock()
	return nil
}

func (a *audit) all() []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Attempt(nil), a.attempts...)
}

func decision(id uint64, do string, params Params, timeout time.Duration) engine.Decision {
	return engine.Decision{ID: id, Time: time.Now(), Kind: engine.KindAction, Policy: "p", Instance: "i",
		Action: &engine.ActionCall{Do: do, Params: params, Step: 1, Attempt: 1, Timeout: timeout}}
}

// runOne executes one decision and returns the result event.
func runOne(t *testing.T, x *Executor, results chan engine.Event, d engine.Decision) engine.Event {
	t.Helper()
	x.Execute(context.Background(), d)
	ev := <-results
	if ev.Labels[engine.LabelDecision] != strconv.FormatUint(d.ID, 10) || ev.Labels[engine.LabelPolicy] != "p" ||
		ev.Labels[engine.LabelInstance] != "i" || ev.Labels[engine.LabelAction] != d.Action.Do {
		t.Fatalf("result labels %v do not identify the decision", ev.Labels)
	}
	return ev
}

func TestBuiltinsSucceedFailAndTimeOut(t *testing.T) {
	cases := []struct {
		action string
		params Params
	}{
		{"RECONNECT_WA", nil},
		{"RESET_DB", Params{"db": "remedy"}},
		{"CLEAR_QUEUE", Params{"queue": "inbound", "older_than": "2m"}},
		{"RESTART_SERVICE", Params{"service": "bot", "grace": "5s"}},
		{"RESET_STATE", Params{"scope": "sessions", "ttl": "1h"}},
		{"CLEAN_DATA", Params{"target": "db"}},
		{"CLEAN_DATA", Params{"target": "metrics"}},
		{"CLEAN_DATA", Params{"target": "media"}},
		{"NOTIFY", Params{"text": "hello", "severity": "info"}},
	}
	want := map[string]string{"ok": engine.CodeActionSucceeded, "fail": engine.CodeActionFailed, "hang": engine.CodeActionTimeout}
	for _, c := range cases {
		for mode, code := range want {
			t.Run(c.action+"/"+c.params["target"]+"/"+mode, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := &fake{mode: mode}
					results := make(chan engine.Event, 1)
					a := &audit{}
					x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{WhatsApp: SingleSession(f), DBs: map[string]DBResetter{"remedy": f},
						Queues: f, Services: f, State: []StateResetter{f}, Cleaner: f, Notifier: f}),
						Audit: a, Results: func(ev engine.Event) { results <- ev }})
					start := time.Now()
					ev := runOne(t, x, results, decision(7, c.action, c.params, 20*time.Second))
					if ev.Code != code {
						t.Fatalf("%s: got %s (%s), want %s", mode, ev.Code, ev.Message, code)
					}
					if mode == "hang" && time.Since(start) != 20*time.Second {
						t.Fatalf("timed out after %v, want the step's 20s", time.Since(start))
					}
					if n := f.count(); n != 1 {
						t.Fatalf("subsystem called %d times; the executor must not retry", n)
					}
					x.Wait(context.Background())
					at := a.all()
					if len(at) != 1 || at[0].Action != c.action || at[0].Params["service"] != c.params["service"] {
						t.Fatalf("audit %+v", at)
					}
				})
			})
		}
	}
}

func TestMissingSubsystemFailsClearly(t *testing.T) {
	results := make(chan engine.Event, 1)
	x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{}), Results: func(ev engine.Event) { results <- ev }})
	ev := runOne(t, x, results, decision(1, "RECONNECT_WA", nil, time.Second))
	if ev.Code != engine.CodeActionFailed || ev.Message != "WhatsApp not configured" {
		t.Fatalf("%s %q", ev.Code, ev.Message)
	}
}

// blocker is a subsystem that records how many calls run at once.
type blocker struct {
	mu              sync.Mutex
	running, maxRun int
	release         chan struct{}
}

func (b *blocker) Restart(ctx context.Context, name string, grace time.Duration) error {
	b.mu.Lock()
	b.running++
	b.maxRun = max(b.maxRun, b.running)
	b.mu.Unlock()
	<-b.release
	b.mu.Lock()
	b.running--
	b.mu.Unlock()
	return nil
}

func TestOneRecoveryPerTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blocker{release: make(chan struct{})}
		results := make(chan engine.Event, 4)
		x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{Services: b}), Results: func(ev engine.Event) { results <- ev }})
		ctx := context.Background()
		x.Execute(ctx, decision(1, "RESTART_SERVICE", Params{"service": "bot"}, time.Minute))
		x.Execute(ctx, decision(2, "RESTART_SERVICE", Params{"service": "bot"}, time.Minute))
		x.Execute(ctx, decision(3, "RESTART_SERVICE", Params{"service": "web"}, time.Minute))
		synctest.Wait()
		b.mu.Lock()
		running := b.running
		b.mu.Unlock()
		if running != 2 { // bot (one of the two) and web
			t.Fatalf("%d running, want 2: the second bot restart must wait", running)
		}
		close(b.release)
		for i := 0; i < 3; i++ {
			if ev := <-results; ev.Code != engine.CodeActionSucceeded {
				t.Fatalf("%v", ev)
			}
		}
		if b.maxRun != 2 {
			t.Fatalf("at most %d at once", b.maxRun)
		}
	})
}

func TestBusyTargetTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &blocker{release: make(chan struct{})}
		results := make(chan engine.Event, 2)
		x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{Services: b}), Results: func(ev engine.Event) { results <- ev }})
		x.Execute(context.Background(), decision(1, "RESTART_SERVICE", Params{"service": "bot"}, time.Hour))
		synctest.Wait()
		ev := runOne(t, x, results, decision(2, "RESTART_SERVICE", Params{"service": "bot"}, 10*time.Second))
		if ev.Code != engine.CodeActionTimeout || ev.Labels[engine.LabelDecision] != "2" {
			t.Fatalf("%v", ev)
		}
		close(b.release)
		<-results
	})
}

func TestPanickingActionFails(t *testing.T) {
	results := make(chan engine.Event, 1)
	r := NewRegistry()
	r.Register("NOTIFY", ActionFunc(func(ctx context.Context, p Params) error { panic("bad handler") }))
	a := &audit{}
	x := NewExecutor(ExecutorOptions{Registry: r, Audit: a, Results: func(ev engine.Event) { results <- ev }})
	ev := runOne(t, x, results, decision(1, "NOTIFY", Params{"text": "x"}, time.Second))
	if ev.Code != engine.CodeActionFailed || ev.Message != "panic: bad handler" {
		t.Fatalf("%s %q", ev.Code, ev.Message)
	}
	x.Wait(context.Background())
	if at := a.all(); len(at) != 1 || at[0].Outcome != "failed" || len(at[0].Error) < 50 {
		t.Fatalf("audit should keep the stack: %+v", at)
	}
}

func TestSkippedAndDryRun(t *testing.T) {
	f := &fake{mode: "ok"}
	results := make(chan engine.Event, 1)
	a := &audit{}
	x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{Services: f}), Audit: a, Results: func(ev engine.Event) { results <- ev }})
	d := decision(1, "RESTART_SERVICE", Params{"service": "bot"}, time.Second)
	d.Action.Skipped = "breaker open until 10:00"
	x.Execute(context.Background(), d)
	x.Wait(context.Background())
	if f.count() != 0 || len(results) != 0 || a.all()[0].Outcome != "skipped: breaker open until 10:00" {
		t.Fatalf("skipped decision ran or reported: calls %d, audit %+v", f.calls, a.all())
	}

	dry := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{Services: f}), Audit: a, DryRun: true,
		Results: func(ev engine.Event) { results <- ev }})
	ev := runOne(t, dry, results, decision(2, "RESTART_SERVICE", Params{"service": "bot"}, time.Second))
	dry.Wait(context.Background())
	if ev.Code != engine.CodeActionSucceeded || f.count() != 0 || a.all()[1].Outcome != "dry_run" {
		t.Fatalf("dry run: %v, calls %d", ev, f.count())
	}
}

// The executor's result events drive the engine's ladder: fail, fail, succeed.
func TestExecutorDrivesTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set := loadSet(t, `
policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    actions:
      - do: RESTART_SERVICE
        with: {service: '{{ .labels.service }}'}
        timeout: 5s
        attempts: 3
        backoff: {initial: 1s, max: 1s, jitter: none}
`)
		e := engine.New(set, engine.Options{Seed: 1})
		f := &fake{mode: "fail"}
		results := make(chan engine.Event, 8)
		x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{Services: f}), Results: func(ev engine.Event) { results <- ev }})
		ctx := context.Background()
		feed := func(in engine.Input) []engine.Decision {
			out := append([]engine.Decision(nil), e.Process(in)...)
			for _, d := range out {
				x.Execute(ctx, d)
			}
			return out
		}
		feed(engine.Event{Time: time.Now(), Code: "SERVICE_DOWN", Labels: map[string]string{"service": "bot"}})
		resolved := false
		// The daemon's loop in miniature: a result event or the engine's next deadline.
		for step := 0; step < 20 && !resolved; step++ {
			var timer <-chan time.Time
			if next := e.NextDeadline(); !next.IsZero() {
				timer = time.After(time.Until(next))
			}
			var out []engine.Decision
			select {
			case ev := <-results:
				if f.count() == 2 {
					f.mode = "ok" // the third attempt works
				}
				out = feed(ev)
			case <-timer:
				out = feed(engine.Tick{Time: time.Now()})
			}
			for _, d := range out {
				resolved = resolved || d.State == engine.Resolved
			}
		}
		if !resolved || f.count() != 3 {
			t.Fatalf("resolved %v after %d calls", resolved, f.count())
		}
	})
}

func TestTargetKey(t *testing.T) {
	for _, c := range []struct {
		action string
		p      Params
		want   string
	}{
		{"RESTART_SERVICE", Params{"service": "bot"}, "RESTART_SERVICE:bot"},
		{"RECONNECT_WA", nil, "RECONNECT_WA"},
		{"CLEAR_QUEUE", Params{"queue": "in", "older_than": "1m"}, "CLEAR_QUEUE:in"},
	} {
		if got := Target(c.action, c.p); got != c.want {
			t.Errorf("%s: %s", c.want, got)
		}
	}
	_ = fmt.Sprint
}

type flow struct {
	name, scope string
	last        time.Time
	state       string
}

func (f *flow) Name() string            { return f.name }
func (f *flow) Scope() string           { return f.scope }
func (f *flow) LastProgress() time.Time { return f.last }
func (f *flow) Reset() string           { b := f.state; f.state = "start"; return b }

func TestMachinesResetOnlyStaleOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMachines()
		stale := &flow{name: "pairing", scope: "sessions", last: time.Now().Add(-2 * time.Hour), state: "waiting_qr"}
		live := &flow{name: "order", scope: "sessions", last: time.Now(), state: "paying"}
		m.Add(stale)
		m.Add(live)
		results := make(chan engine.Event, 1)
		a := &audit{}
		x := NewExecutor(ExecutorOptions{Registry: Builtins(Deps{State: []StateResetter{m}}), Audit: a,
			Results: func(ev engine.Event) { results <- ev }})
		ev := runOne(t, x, results, decision(1, "RESET_STATE", Params{"scope": "sessions", "ttl": "1h"}, time.Minute))
		x.Wait(context.Background())
		if ev.Code != engine.CodeActionSucceeded || stale.state != "start" || live.state != "paying" {
			t.Fatalf("%v: stale %s, live %s", ev, stale.state, live.state)
		}
		if out := a.all()[0].Output; !strings.Contains(out, "reset pairing") || !strings.Contains(out, "was waiting_qr") {
			t.Fatalf("before-image not in the audit: %q", out)
		}
	})
}
