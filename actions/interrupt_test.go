package actions

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// An attempt whose action ignores its context (a hung call) is abandoned by Interrupt:
// InFlight names it until then, and afterwards the audit has it as interrupted, so
// nothing is lost, and the engine gets no failure (a stop is not the action's fault); an
// attempt waiting for the same target is interrupted too. Under synctest, so the 10-minute timeout costs nothing.
func TestInterruptAbandonsAHangingAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		defer close(hang) // the hung goroutine ends with the test
		reg := NewRegistry()
		reg.Register("RESTART_SERVICE", ActionFunc(func(context.Context, Params) error { <-hang; return nil }))
		results := make(chan engine.Event, 4)
		a := &audit{}
		x := NewExecutor(ExecutorOptions{Registry: reg, Audit: a, Results: func(ev engine.Event) { results <- ev }})
		x.Execute(context.Background(), decision(1, "RESTART_SERVICE", Params{"service": "bot"}, 10*time.Minute))
		x.Execute(context.Background(), decision(2, "RESTART_SERVICE", Params{"service": "bot"}, 10*time.Minute))
		time.Sleep(time.Second)
		synctest.Wait()
		in := x.InFlight()
		if len(in) != 2 || in[0].Action != "RESTART_SERVICE" || in[0].Target != "bot" {
			t.Fatalf("in flight: %+v", in)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := x.Wait(ctx); err == nil {
			t.Fatal("Wait returned while the action hangs")
		}
		cancel()
		x.Interrupt()
		if err := x.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(results) != 0 {
			t.Fatalf("results reported to the engine: %+v", <-results)
		}
		got := a.all()
		if len(got) != 2 || got[0].Outcome != OutcomeInterrupted || got[1].Outcome != OutcomeInterrupted {
			t.Fatalf("audit %+v", got)
		}
		if n := len(x.InFlight()); n != 0 {
			t.Fatalf("%d still in flight", n)
		}
	})
}
