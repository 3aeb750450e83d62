package engine

import (
	"strconv"
	"testing"
	"time"
)

// A refused attempt (the action cannot apply to its target) uses up its step: the
// ladder goes to the next step at once instead of retrying what cannot work.
func TestRefusedAttemptUsesUpItsStep(t *testing.T) {
	h := newHarness(t, ladderSrc)
	a := pick(h.event(0, "SERVICE_DOWN", "service", "bot"), KindAction)[0]
	out := h.feed(Event{Time: t0.Add(time.Second), Code: CodeActionFailed, Source: "executor", Message: "refused: no service bot",
		Labels: map[string]string{LabelPolicy: a.Policy, LabelInstance: a.Instance, LabelDecision: strconv.FormatUint(a.ID, 10),
			LabelAction: a.Action.Do, LabelOutcome: OutcomeRefused}})
	acts := pick(out, KindAction)
	if len(acts) != 1 || acts[0].Action.Do != "EXEC" || acts[0].Action.Step != 2 {
		t.Fatalf("after a refusal: %q, want step 2 at once\n%s", states(out), h.dump())
	}
}
