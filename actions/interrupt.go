package actions

import (
	"context"
	"sort"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// Running is an attempt in flight, as a shutdown reports what it waits for.
type Running struct {
	Policy, Instance string
	Action           string
	Target           string // the action's target parameter ("bot" for RESTART_SERVICE on bot); empty if it has none
	Start            time.Time
}

// OutcomeInterrupted is the audit outcome of an attempt abandoned by Interrupt: it was
// started and may have done part of its work, but nobody waited for its result.
const OutcomeInterrupted = "interrupted"

// InFlight lists the attempts running now, oldest first.
func (x *Executor) InFlight() []Running {
	x.mu.Lock()
	out := make([]Running, 0, len(x.running))
	for _, r := range x.running {
		out = append(out, r)
	}
	x.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Action+out[i].Target < out[j].Action+out[j].Target
	})
	return out
}

// Interrupt abandons every attempt in flight and every attempt started later: each is
// cancelled and recorded in the audit with outcome "interrupted", so the attempt is not
// lost. It is not reported to the engine: a stop is not the action's failure, and a
// failure reported at shutdown would climb the ladder and page ("every recovery step
// failed") for remedy's own stop. The engine keeps the attempt in flight in its saved
// state, and after a restart its timeout decides, as for any unanswered attempt. An
// action that ignores its context keeps its goroutine until the process exits; nobody
// waits for it. Shutdown calls Interrupt when stop_timeout runs out (systemd's
// TimeoutStopSec does the same to a unit's processes).
func (x *Executor) Interrupt() { x.stop() }

// track records d as running until the returned func is called.
func (x *Executor) track(d engine.Decision, start time.Time) func() {
	spec, _ := policies.LookupAction(d.Action.Do)
	target := ""
	if spec.Target != "" {
		target = d.Action.Params[spec.Target]
	}
	x.mu.Lock()
	x.running[d.ID] = Running{Policy: d.Policy, Instance: d.Instance, Action: d.Action.Do, Target: target, Start: start}
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		delete(x.running, d.ID)
		x.mu.Unlock()
	}
}

func (x *Executor) interrupted(ctx context.Context, d engine.Decision, start time.Time, output string) {
	dur := x.opts.Now().Sub(start)
	a := x.attempt(d, start, dur, OutcomeInterrupted, nil, output)
	a.Error = "interrupted: remedy stopped before the attempt finished"
	x.record(ctx, a)
}
