package actions

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/remedy-run/remedy/engine"
)

// An action that cannot apply to its target is refused before it runs: one outcome in
// the audit ("refused", with the reason), nothing run, no "moved 0 items", and the
// result tells the engine not to retry the step. (Issue 25: CLEAR_QUEUE on a bot's own
// queue "jobs" was audited as "failed: no queue named jobs" and "moved 0 items".)
func TestActionOnAMissingTargetIsRefused(t *testing.T) {
	cases := []struct {
		action string
		params Params
		deps   func(f *fake) Deps
	}{
		{"CLEAR_QUEUE", Params{"queue": "jobs"}, func(f *fake) Deps { return Deps{Queues: f} }},
		{"CLEAR_QUEUE", Params{"queue": "inbound"}, func(f *fake) Deps { return Deps{} }},
		{"RESET_DB", Params{"db": "other"}, func(f *fake) Deps { return Deps{DBs: map[string]DBResetter{"remedy": f}} }},
	}
	for _, c := range cases {
		t.Run(c.action+"/"+c.params["queue"]+c.params["db"], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{mode: "ok"}
				results := make(chan engine.Event, 1)
				a := &audit{}
				x := NewExecutor(ExecutorOptions{Registry: Builtins(c.deps(f)), Audit: a,
					Results: func(ev engine.Event) { results <- ev }})
				ev := runOne(t, x, results, decision(3, c.action, c.params, 0))
				x.Wait(context.Background())
				if ev.Code != engine.CodeActionFailed || ev.Labels[engine.LabelOutcome] != engine.OutcomeRefused ||
					!strings.HasPrefix(ev.Message, "refused: ") {
					t.Fatalf("result %s %v %q, want a refusal", ev.Code, ev.Labels, ev.Message)
				}
				if f.count() != 0 {
					t.Fatalf("the action ran %d times", f.count())
				}
				at := a.all()
				if len(at) != 1 || at[0].Outcome != "refused" || at[0].Error == "" || at[0].Output != "" {
					t.Fatalf("audit %+v, want one refused attempt with its reason and no output", at)
				}
			})
		})
	}
}
