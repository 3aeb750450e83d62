package engine

import (
	"errors"
	"time"

	"github.com/remedy-run/remedy/conditions"
)

// budget records an evaluation's outcome against the evaluation budget: a condition
// that stopped at it is skipped (not met, like any evaluation error) and decided once as
// EvalBudget, so the daemon raises POLICY_EVAL_BUDGET; the next evaluation that answers
// clears it. The budget counts work, so the engine stays pure and deterministic.
func (e *Engine) budget(ps *policyState, key string, err error) {
	if !errors.Is(err, conditions.ErrEvalBudget) {
		if err == nil {
			ps.overBudget, ps.budgetErr, ps.budgetHit = time.Time{}, "", false
		}
		return
	}
	first := ps.overBudget.IsZero()
	ps.overBudget, ps.budgetErr, ps.budgetHit = e.now, err.Error(), true
	if first {
		d := e.decision(ps, &instance{key: key}, KindState, err.Error())
		d.State = EvalBudget
		e.out = append(e.out, d)
	}
}
