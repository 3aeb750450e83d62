package engine

import (
	"math"
	"strconv"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// scheduleOnFire places the first attempt of a new firing: now, or — if the ladder kept
// its place because the last resolution was shorter than stable_for — after the backoff
// from the last attempt.
func (e *Engine) scheduleOnFire(ps *policyState, inst *instance) {
	p := ps.p
	if !inst.exhausted && inst.step < len(p.Actions) && inst.attempt >= p.Actions[inst.step].Attempts {
		inst.step, inst.attempt = inst.step+1, 0
	}
	if inst.exhausted || inst.step >= len(p.Actions) {
		e.exhaust(ps, inst)
		return
	}
	due := e.now
	if !inst.lastAttempt.IsZero() && inst.attempt > 0 {
		if t := inst.lastAttempt.Add(e.delay(p.Actions[inst.step].Backoff, inst.attempt)); t.After(due) {
			due = t
		}
	}
	inst.nextAttempt = due
	e.touch(ps, inst)
	e.advance(ps, inst)
}

// retryByEvent hurries the instance a retry_on event is about — the one of its group_by
// values (one session's WA_REACHABLE says nothing of another's network) — or, for an
// event carrying none of the group_by labels, every instance, as resolve_on does.
func (e *Engine) retryByEvent(ps *policyState, ev *Event) {
	has := len(ps.groupBy) == 0
	for _, g := range ps.groupBy {
		_, ok := ev.Labels[g]
		has = has || ok
	}
	if has {
		if inst := ps.instances[e.key(ps, ev.Labels)]; inst != nil {
			e.hurry(ps, inst, ev.Code)
		}
		return
	}
	for _, key := range ps.sortedKeys() {
		e.hurry(ps, ps.instances[key], ev.Code)
	}
}

// hurry runs a waiting attempt now (a retry_on event: the cause of the failures is gone).
// An attempt in flight and an open breaker are left as they are; an exhausted ladder is
// re-armed if the policy allows it (rearm.go).
func (e *Engine) hurry(ps *policyState, inst *instance, code string) {
	if inst.exhausted {
		e.rearm(ps, inst, code)
		return
	}
	if inst.state != Firing || inst.inflight != 0 || inst.nextAttempt.IsZero() || !inst.nextAttempt.After(e.now) {
		return
	}
	if !inst.breakerUntil.IsZero() && e.now.Before(inst.breakerUntil) {
		return
	}
	inst.nextAttempt = e.now
	e.touch(ps, inst)
	e.emitState(ps, inst, Firing, "backoff cut short by "+code)
	e.attempt(ps, inst)
}

// delay is the wait after the n-th failed attempt of a step:
// min(max, initial × multiplier^(n-1)), then jittered.
func (e *Engine) delay(b policies.Backoff, n int) time.Duration {
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(n-1))
	if d > float64(b.Max) || math.IsInf(d, 0) {
		d = float64(b.Max)
	}
	base := time.Duration(d)
	switch b.Jitter {
	case policies.JitterFull:
		return time.Duration(e.rng.Int64N(int64(base) + 1))
	case policies.JitterEqual:
		half := base / 2
		return half + time.Duration(e.rng.Int64N(int64(base-half)+1))
	}
	return base
}

// attempt decides one attempt of the current step.
func (e *Engine) attempt(ps *policyState, inst *instance) {
	p := ps.p
	step := &p.Actions[inst.step]
	d := e.decision(ps, inst, KindAction, "recovery step "+strconv.Itoa(inst.step+1)+" of "+strconv.Itoa(len(p.Actions)))
	d.Action = &ActionCall{Do: step.Do, Params: step.RenderParams(e.templateData(ps, inst)), Templated: step.TemplatedParams(),
		Step: inst.step + 1, Attempt: inst.attempt + 1, Timeout: step.Timeout}
	inst.nextAttempt, inst.awaitUntil = time.Time{}, time.Time{}
	inst.verifyAt, inst.provisional = time.Time{}, false
	e.touch(ps, inst)
	if !inst.breakerUntil.IsZero() && e.now.Before(inst.breakerUntil) {
		// Recorded once, then retried when the breaker closes.
		d.Action.Skipped = "breaker open until " + inst.breakerUntil.UTC().Format(time.RFC3339)
		inst.nextAttempt = inst.breakerUntil
		e.out = append(e.out, d)
		return
	}
	inst.attempt++
	inst.lastAttempt = e.now
	if p.Mode == policies.DryRun {
		// Decided and recorded, never run, so no result will come: the ladder stops here.
		d.Action.Skipped = "dry_run"
		e.out = append(e.out, d)
		return
	}
	inst.inflight, inst.inflightStep, inst.inflightDue = d.ID, inst.step, e.now.Add(step.Timeout)
	e.out = append(e.out, d)
}

// onResult matches an executor's result event to the attempt awaiting it.
func (e *Engine) onResult(ev *Event) {
	ps := e.named[ev.Labels[LabelPolicy]]
	if ps == nil {
		return
	}
	inst := ps.instances[ev.Labels[LabelInstance]]
	if inst == nil || inst.inflight == 0 || inst.state != Firing {
		return
	}
	id, err := strconv.ParseUint(ev.Labels[LabelDecision], 10, 64)
	if err != nil || id != inst.inflight {
		return // a late result of an attempt already given up on
	}
	if ev.Code == CodeActionSucceeded {
		e.attemptSucceeded(ps, inst)
		return
	}
	why := "attempt failed"
	if ev.Labels[LabelOutcome] == OutcomeRefused {
		// The action cannot apply to its target: its other attempts would be refused too.
		why = "attempt refused"
		inst.attempt = ps.p.Actions[inst.inflightStep].Attempts
	}
	if ev.Code == CodeActionTimeout {
		why = "attempt timed out"
	}
	if ev.Message != "" {
		why += ": " + ev.Message
	}
	e.attemptFailed(ps, inst, ev.Code, why)
}

func (e *Engine) attemptSucceeded(ps *policyState, inst *instance) {
	p := ps.p
	id := inst.inflight
	inst.inflight = 0
	e.touch(ps, inst)
	// A success is a step, not the end: the failure chain is broken by the resolution,
	// not by a success that the fault may still prove wrong.
	timeout := p.Actions[inst.inflightStep].Timeout
	inst.succeeded = AttemptRef{ID: id, Do: p.Actions[inst.inflightStep].Do, Step: inst.inflightStep + 1, Attempt: inst.attempt}
	if len(p.ResolveOn) == 0 && !p.IsSample() {
		// verify.go: the condition is checked again after the step's timeout, and the
		// fault reported again before that means the success did not hold.
		inst.provisional, inst.verifyAt = true, e.now.Add(timeout)
		e.touch(ps, inst)
		e.emitOf(ps, inst, Provisional, "recovery action succeeded; provisional until the fault is seen gone "+
			"(checked again in "+timeout.String()+"; a report of it meanwhile means it did not hold)")
		return
	}
	// With resolve_on only the resolving event ends the incident, and for a sample
	// policy only its condition turning false. Either gets the step's timeout to happen;
	// if it does not, the attempt counts as failed.
	inst.awaitUntil = e.now.Add(timeout)
	what := "a resolve_on event"
	if p.IsSample() {
		what = "the condition to turn false"
	}
	e.emitOf(ps, inst, Provisional, "recovery action succeeded; waiting "+timeout.String()+" for "+what)
}

func (e *Engine) attemptFailed(ps *policyState, inst *instance, code, why string) {
	p := ps.p
	inst.inflight = 0
	inst.consecFails++
	e.touch(ps, inst)
	if b := p.Breaker; b != nil {
		cutoff := e.now.Add(-b.Within)
		kept := inst.failures[:0]
		for _, t := range inst.failures {
			if !t.Before(cutoff) {
				kept = append(kept, t)
			}
		}
		inst.failures = append(kept, e.now)
		if len(inst.failures) >= b.Failures && inst.breakerUntil.IsZero() {
			inst.breakerUntil = e.now.Add(b.OpenFor)
			msg := "breaker open: " + strconv.Itoa(len(inst.failures)) + " failures within " + b.Within.String() +
				"; automatic recovery paused until " + inst.breakerUntil.UTC().Format(time.RFC3339)
			e.emitState(ps, inst, BreakerOpen, msg)
			e.notify(ps, inst, Escalated, false, msg)
		}
	}
	if esc := p.Escalate; esc != nil && !inst.escalated && inst.consecFails >= esc.AfterFailures {
		inst.escalated, inst.severity = true, esc.Severity
		msg := strconv.Itoa(inst.consecFails) + " consecutive failed attempts (" + why + ")"
		e.emitState(ps, inst, Escalated, msg)
		if p.Alert.Notifies("escalated") {
			e.notify(ps, inst, Escalated, false, msg)
		}
	}
	_ = code
	e.nextStep(ps, inst)
}

// nextStep schedules what follows a failed attempt: another attempt of the step after
// the backoff, the next step at once, or exhaustion.
func (e *Engine) nextStep(ps *policyState, inst *instance) {
	p := ps.p
	if inst.attempt >= p.Actions[inst.step].Attempts {
		inst.step++
		inst.attempt = 0
		if inst.step >= len(p.Actions) {
			e.exhaust(ps, inst)
			return
		}
		inst.nextAttempt = e.now
	} else {
		inst.nextAttempt = e.now.Add(e.delay(p.Actions[inst.step].Backoff, inst.attempt))
	}
	e.touch(ps, inst)
	if !inst.nextAttempt.After(e.now) {
		e.attempt(ps, inst)
	}
}

// exhaust marks the ladder used up: the instance stays firing, escalated to critical,
// and a human is told regardless of notify_on.
func (e *Engine) exhaust(ps *policyState, inst *instance) {
	inst.exhausted = true
	inst.nextAttempt = time.Time{}
	inst.escalated = true
	inst.severity = policies.Critical
	if e.verifies(ps.p) {
		// The fault may still go away by itself (verify.go).
		inst.verifyAt = e.now.Add(verifyEvery(ps.p, inst))
	}
	e.touch(ps, inst)
	msg := "every recovery step failed; manual action needed"
	e.emitState(ps, inst, Exhausted, msg)
	e.notify(ps, inst, Escalated, false, msg)
}
