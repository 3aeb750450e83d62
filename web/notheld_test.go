package web

import "testing"

// Issue 25: a WEBHOOK step with resolve_on showed "succeeded" twice in Recovery actions
// while the incident said "every recovery step failed". Each attempt is one row whose
// outcome agrees with the engine.
func TestSuccessThatDidNotHoldIsOneRow(t *testing.T) {
	rows := []ActionRecord{ // newest first, as the audit returns them
		{ID: 5, DecisionID: 9, Action: "WEBHOOK", Attempt: 2, Outcome: OutcomeNotHeld, Error: "none of resolve_on arrived within its timeout"},
		{ID: 4, DecisionID: 9, Action: "WEBHOOK", Attempt: 2, Outcome: "succeeded"},
		{ID: 3, DecisionID: 4, Action: "WEBHOOK", Attempt: 1, Outcome: OutcomeNotHeld, Error: "none of resolve_on arrived within its timeout"},
		{ID: 2, DecisionID: 4, Action: "WEBHOOK", Attempt: 1, Outcome: "succeeded"},
		{ID: 1, DecisionID: 2, Action: "RESET_DB", Outcome: OutcomeNotHeld, Error: "DB_FULL came again"}, // its attempt is older than the page
	}
	got := foldNotHeld(rows)
	if len(got) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(got), got)
	}
	for _, r := range got[:2] {
		if r.Outcome != "succeeded, did not hold" || r.Error == "" {
			t.Fatalf("row %+v, want the success marked as not held with the reason", r)
		}
	}
	if got[2].Outcome != OutcomeNotHeld || got[2].Error == "" {
		t.Fatalf("an unmatched row is kept: %+v", got[2])
	}
}
