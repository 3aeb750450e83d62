package engine

import (
	"time"

	"github.com/remedy-run/remedy/policies"
)

// Resolution of an event policy without resolve_on. An action's success is a step, not
// the end: the incident resolves when its fault is seen gone, as Monit's recovery is the
// test passing again. After a success the instance is provisional (it stays firing):
//
//   - An event that wakes the policy and satisfies its condition before the instance
//     resolves proves the success wrong: the moment not_held is recorded, the attempt
//     counts as failed and the ladder goes on (backoff, next step, escalation).
//   - At the step's timeout after the success the condition is checked again on the
//     incident's trigger event (as `for` does when it runs out). False — its history
//     windows slid past the fault's events — resolves the instance.
//   - Still true, and the condition reads history or state (count, since, rate, metrics,
//     firing(), …): time may still make it false, so it is checked again every step
//     timeout; it never resolves while it holds.
//   - Still true, and the condition reads only the event (or there is no `when`): the
//     passing of time cannot make it false, so the evidence is the quiet: the fault was
//     not reported again for the step's timeout. It resolves then.
//
// An exhausted ladder is checked the same way, from the last report of the fault: a
// fault that went away by itself (or by a human's hand) resolves, one that is still
// reported keeps the incident firing. Only evidence resolves: the condition seen false,
// or the fault's reports stopping for a whole step timeout.

// verifies reports whether p's incidents resolve by this rule.
func (e *Engine) verifies(p *policies.Policy) bool {
	return !p.IsSample() && len(p.ResolveOn) == 0 && len(p.Actions) > 0
}

// readsState reports whether p's condition can change with time or other inputs
// between two of its events: it reads history windows, metrics or policy states.
func readsState(p *policies.Policy) bool {
	if p.Cond == nil {
		return false
	}
	u := p.Cond.Uses()
	return len(u.Codes) > 0 || len(u.Metrics) > 0 || len(u.Firing) > 0
}

// verifyEvery is the re-check period: the timeout of the step last attempted.
func verifyEvery(p *policies.Policy, inst *instance) time.Duration {
	i := inst.inflightStep
	if i >= len(p.Actions) {
		i = len(p.Actions) - 1
	}
	return p.Actions[i].Timeout
}

// verify re-checks a provisional or exhausted instance's condition (see above).
func (e *Engine) verify(ps *policyState, inst *instance) {
	p := ps.p
	inst.verifyAt = time.Time{}
	e.touch(ps, inst)
	tr := &inst.trigger
	e.rt.SetEvent(tr.Code, tr.Source, tr.Message, tr.Value, tr.Labels)
	e.rt.SetLabels(inst.labels)
	if !e.eval(ps, inst.key) {
		// provisional stays set through keep_firing_for: the fault back meanwhile
		// still proves the success wrong.
		e.clear(ps, inst, "the fault is gone: the condition, checked again, is false")
		return
	}
	every := verifyEvery(p, inst)
	switch {
	case readsState(p):
		inst.verifyAt = e.now.Add(every)
	case inst.provisional:
		e.clear(ps, inst, "the fault is gone: not reported again for "+every.String()+" after the action's success")
	default:
		e.clear(ps, inst, "the fault is gone: not reported for "+every.String()+" since the ladder was used up")
	}
}

// notHeld records that a provisional success was proved wrong and counts the attempt
// as failed.
func (e *Engine) notHeld(ps *policyState, inst *instance, why string) {
	inst.provisional, inst.verifyAt, inst.awaitUntil = false, time.Time{}, time.Time{}
	e.emitOf(ps, inst, NotHeld, why)
	e.attemptFailed(ps, inst, CodeActionFailed, why)
}

// emitOf records a moment about the attempt that last reported success.
func (e *Engine) emitOf(ps *policyState, inst *instance, s State, why string) {
	d := e.decision(ps, inst, KindState, why)
	d.State = s
	ref := inst.succeeded
	d.Of = &ref
	e.out = append(e.out, d)
}
