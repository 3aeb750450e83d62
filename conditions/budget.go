package conditions

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// The evaluation budget bounds the work of one evaluation by counting it, not by the
// clock (the engine is pure, and an evaluation must decide the same way on a fast and
// a slow machine). expr bounds memory (vm.MemoryBudget: ranges and arrays) but not
// time: `reduce(1..100000, #acc + "xxxxxxxxxx", "")` builds strings quadratically and
// took 18 s with 1e5 elements (issue 26, A18). Every loop of expr is a builtin with a
// predicate (map, filter, reduce, all, any, …), so each predicate body is wrapped in
// stepName, which charges the evaluation one unit per run plus one per 16 bytes of
// the string, or per element of the array or map, it returns (what the quadratic cases
// copy). Past
// EvalBudget units the evaluation stops with ErrEvalBudget.

// EvalBudget is the work one evaluation may do, in units of one predicate run, 16 bytes
// of a string it returns or one element of an array it returns: 2,000,000 (twice
// expr's default memory budget of 1e6 elements, so one pass over the largest range expr
// allows fits). The field case's condition stops after about 2,500 of its 100,000 runs
// (BenchmarkEvalBudgetFieldCase: 12 ms on 2 cores, 18 s without the budget).
const EvalBudget = 2_000_000

// stepName is the function predicate bodies are wrapped in (Runtime.step).
const stepName = "$step"

// ErrEvalBudget is an evaluation stopped at EvalBudget: the condition is treated as not
// met and the policy is reported (engine: EvalBudget state, POLICY_EVAL_BUDGET).
var ErrEvalBudget = errors.New("condition over its evaluation budget")

// budgetError is the panic step raises; expr's VM recovers it into its error.
type budgetError struct{ spent int }

func (e *budgetError) Error() string {
	return fmt.Sprintf("%v: more than %d units of work (a unit is one run of a map/filter/reduce body, or 16 bytes or one element it returns); simplify the expression", ErrEvalBudget, EvalBudget)
}

func (e *budgetError) Unwrap() error { return ErrEvalBudget }

// wrapPredicates wraps n's predicate bodies in stepName (once: a patched body is a
// call to it already).
func wrapPredicates(n *ast.BuiltinNode) {
	for _, a := range n.Arguments {
		p, ok := a.(*ast.PredicateNode)
		if !ok {
			continue
		}
		if c, ok := p.Node.(*ast.CallNode); ok {
			if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == stepName {
				continue
			}
		}
		p.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: stepName}, Arguments: []ast.Node{p.Node}}
	}
}

// step charges one predicate run and its result's size; it panics with a *budgetError
// past EvalBudget.
func (r *Runtime) step(v any) any {
	r.spent++
	switch x := v.(type) {
	case bool, int, float64, nil:
	case string:
		r.spent += len(x) / 16
	default:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map {
			r.spent += rv.Len()
		}
	}
	if r.spent > EvalBudget {
		panic(&budgetError{spent: r.spent})
	}
	return v
}
