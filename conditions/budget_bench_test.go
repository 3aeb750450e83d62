package conditions

import (
	"testing"
	"time"
)

// BenchmarkEvalBudgetFieldCase is the time one evaluation of issue 26's A18 condition
// takes to reach ErrEvalBudget (18 s before the budget): go test -bench EvalBudget.
func BenchmarkEvalBudgetFieldCase(b *testing.B) {
	c, err := Compile(`len(reduce(1..100000, #acc + "xxxxxxxxxx", "")) > 0`)
	if err != nil {
		b.Fatal(err)
	}
	rt := NewRuntime(time.UTC, nil)
	rt.Prepare([]*Condition{c})
	for b.Loop() {
		if _, err := rt.Eval(c, time.Unix(0, 0)); err == nil {
			b.Fatal("no budget error")
		}
	}
}
