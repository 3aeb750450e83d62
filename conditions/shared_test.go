package conditions

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A compiled Condition is shared by engines on different goroutines (the daemon's and the
// policy tester's): each runtime must evaluate and explain it without writing to the
// Condition. The race detector fails this test if a helper call's result is boxed in a
// cell of the Condition rather than of the runtime.
func TestSharedConditionOnTwoRuntimes(t *testing.T) {
	conds := []*Condition{
		mustCompile(t, `count("E", "1m") * 2 > 3`), // expr: arithmetic on a helper call
		mustCompile(t, `avg_over("m", "1m") + since("E") > 0`),
		mustCompile(t, `count("E", "1m") > 1 && avg_over("m", "1m") > 2`), // fast path
	}
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	results := make([][]string, 2)
	for g := range 2 {
		wg.Go(func() {
			r := NewRuntime(nil, nil)
			r.Prepare(conds)
			for i := range 200 {
				now := t0.Add(time.Duration(i) * time.Second)
				r.ObserveEvent(now, "E", "test", "", 0, nil)
				r.ObserveSample(now, map[string]float64{"m": float64(i % 7)})
				for _, c := range conds {
					ok, err := r.Eval(c, now)
					results[g] = append(results[g], fmt.Sprint(ok, err, r.Explain(c, now)))
				}
			}
		})
	}
	wg.Wait()
	for i := range results[0] {
		if results[0][i] != results[1][i] {
			t.Fatalf("the same inputs gave different results on two runtimes at step %d:\n%s\n%s", i, results[0][i], results[1][i])
		}
	}
}
