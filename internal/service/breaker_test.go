package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/service"
	"github.com/remedy-run/remedy/policies"
)

// A service whose program is gone cannot be restarted: the engine's breaker stops the
// restarts after three failures, and the attempt after that is recorded as not run.
func TestRestartsStopUnderTheBreaker(t *testing.T) {
	set, err := policies.ParseFiles([]string{"p.yaml"}, map[string][]byte{"p.yaml": []byte(`
policies:
  - name: svc
    on: [SERVICE_DOWN]
    group_by: [service]
    resolve_on: [SERVICE_UP]
    actions:
      - do: RESTART_SERVICE
        with: {service: '{{ .labels.service }}', grace: 1s}
        timeout: 5s
        attempts: 10
        backoff: {initial: 20ms, max: 20ms, jitter: none}
    breaker: {failures: 3, within: 1h, open_for: 1h}
`)})
	if err != nil {
		t.Fatal(err)
	}
	inputs := make(chan engine.Event, 16)
	sup := service.NewSupervisor(func(ev engine.Event) { inputs <- ev }, nil)
	sup.Add(service.NewProcess(service.ProcessConfig{Name: "bot", Command: []string{"/no/such/node-bot"}}))
	x := actions.NewExecutor(actions.ExecutorOptions{Registry: actions.Builtins(actions.Deps{Services: sup}),
		Results: func(ev engine.Event) { inputs <- ev }})
	e := engine.New(set, engine.Options{Seed: 1})

	var timeline []engine.Decision
	feed := func(in engine.Input) {
		for _, d := range e.Process(in) {
			timeline = append(timeline, d)
			x.Execute(context.Background(), d)
		}
	}
	feed(engine.Event{Time: time.Now(), Code: "SERVICE_DOWN", Source: "service", Labels: map[string]string{"service": "bot", "exit_code": "1"}})
	// The daemon's loop in miniature, until a second passes with nothing to do (the open
	// breaker holds the next attempt for an hour).
	for quiet := false; !quiet; {
		var timer <-chan time.Time
		if next := e.NextDeadline(); !next.IsZero() && time.Until(next) < 2*time.Second {
			timer = time.After(time.Until(next))
		}
		select {
		case ev := <-inputs:
			feed(ev)
		case <-timer:
			feed(engine.Tick{Time: time.Now()})
		case <-time.After(time.Second):
			quiet = true
		}
	}
	var ran, skipped, opened int
	for _, d := range timeline {
		switch {
		case d.Kind == engine.KindAction && d.Action.Skipped == "":
			ran++
		case d.Kind == engine.KindAction:
			skipped++
		case d.State == engine.BreakerOpen:
			opened++
		}
	}
	if ran != 3 || skipped != 1 || opened != 1 || sup.Status()[0].Restarts != 3 {
		t.Fatalf("ran %d, skipped %d, breaker opened %d, restarts %d", ran, skipped, opened, sup.Status()[0].Restarts)
	}
}
