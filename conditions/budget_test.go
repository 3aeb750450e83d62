package conditions

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Issue 26, A18: an expression's work is bounded by counting it. The field case,
// quadratic string building over 100,000 elements (18 s before), stops with
// ErrEvalBudget; the same shapes under the budget still answer, and the Runtime is
// usable afterwards (the next evaluation starts with a fresh budget).
func TestEvaluationStopsAtItsBudget(t *testing.T) {
	rt := NewRuntime(time.UTC, nil)
	eval := func(src string) (bool, error) {
		c, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		rt.Prepare([]*Condition{c})
		return rt.Eval(c, time.Unix(0, 0))
	}
	for _, src := range []string{
		`len(reduce(1..100000, #acc + "xxxxxxxxxx", "")) > 0`,
		`len(reduce(1..200000, #acc + "x", "")) > 0`,
		`len(map(1..100, reduce(1..1000, #acc + "xxxxxxxxxx", ""))) > 0`,
		`any(1..50, {len(reduce(1..5000, #acc + "0123456789", "")) < 0})`,
	} {
		if ok, err := eval(src); ok || !errors.Is(err, ErrEvalBudget) {
			t.Errorf("%s: %v, %v; want ErrEvalBudget", src, ok, err)
		}
	}
	for _, src := range []string{
		`len(reduce(1..500, #acc + "xxxxxxxxxx", "")) == 5000`,
		`reduce(1..100000, #acc + #, 0) > 0`,
		`all(1..100, {all(1..1000, {# > 0})})`,
		`1 + 2 == 3`,
	} {
		if ok, err := eval(src); !ok || err != nil {
			t.Errorf("%s: %v, %v; want true", src, ok, err)
		}
	}
}

// The kind: seeded random nestings of loops and string building. Invariant: an
// evaluation either answers or stops with ErrEvalBudget, and the work it did before
// stopping (the units the runtime charged) is at most EvalBudget plus one step's charge.
// (expr's own memory budget, which bounds the elements of ranges, may stop it first.)
func TestRandomLoopsStayWithinTheBudget(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 4))
	rt := NewRuntime(time.UTC, nil)
	n := 20
	if raceEnabled {
		n = 6
	}
	for i := range n {
		inner := fmt.Sprintf(`#acc + %q`, string(make([]byte, 1+rng.IntN(100))))
		src := fmt.Sprintf(`len(reduce(1..%d, %s, "")) >= 0`, 1+rng.IntN(200000), inner)
		if rng.IntN(2) == 0 {
			src = fmt.Sprintf(`any(1..%d, {len(reduce(1..%d, %s, "")) < 0})`, 1+rng.IntN(1000), 1+rng.IntN(3000), inner)
			src += " || true"
		}
		c, err := Compile(src)
		if err != nil {
			t.Fatalf("case %d: %s: %v", i, src, err)
		}
		rt.Prepare([]*Condition{c})
		ok, err := rt.Eval(c, time.Unix(0, 0))
		if err != nil && !errors.Is(err, ErrEvalBudget) && !strings.Contains(err.Error(), "memory budget exceeded") {
			t.Fatalf("case %d: %s: %v", i, src, err)
		}
		if err == nil && !ok {
			t.Fatalf("case %d: %s: false", i, src)
		}
		if rt.spent > EvalBudget+200000/16+1 {
			t.Fatalf("case %d: %s: spent %d units", i, src, rt.spent)
		}
	}
}
