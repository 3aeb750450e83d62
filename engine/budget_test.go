package engine

import (
	"strings"
	"testing"
	"time"
)

// Issue 26, A18 in the engine: a policy whose condition does quadratic work stops at
// its evaluation budget (counted, not timed), is decided once as EvalBudget, shows it
// in its status (the dashboard's rule view), and the engine moves on: the canary
// policy behind it fires on the next input, as before the slow policy existed.
func TestPolicyOverItsBudgetIsReportedAndSkipped(t *testing.T) {
	h := newHarness(t, `
policies:
  - name: e-concat
    on: [EXPR_F]
    when: 'len(reduce(1..100000, #acc + "xxxxxxxxxx", "")) > 0'
  - name: canary
    on: [CANARY]
`)
	for i := range 3 {
		h.event(time.Duration(i)*time.Second, "EXPR_F")
	}
	out := h.event(5*time.Second, "CANARY")
	budget := 0
	for _, d := range h.log {
		if d.State == EvalBudget {
			budget++
			if d.Policy != "e-concat" || !strings.Contains(d.Reason.Text, "evaluation budget") {
				t.Fatalf("budget decision: %s", d)
			}
		}
		if d.Policy == "e-concat" && d.State == Firing {
			t.Fatalf("the policy over its budget fired: %s", d)
		}
	}
	if budget != 1 {
		t.Fatalf("%d EvalBudget decisions for 3 evaluations over the budget, want 1", budget)
	}
	fired := false
	for _, d := range out {
		fired = fired || (d.Policy == "canary" && d.State == Firing)
	}
	if !fired {
		t.Fatalf("the canary did not fire after the slow policy: %s", states(out))
	}
	for _, st := range h.e.Status() {
		if st.Name == "e-concat" && (st.OverBudget == nil || !strings.Contains(st.BudgetError, "evaluation budget")) {
			t.Fatalf("rule view: %+v", st)
		}
		if st.Name == "canary" && st.OverBudget != nil {
			t.Fatalf("canary shown over budget")
		}
	}
}
