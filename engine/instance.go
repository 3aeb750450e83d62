package engine

import (
	"strconv"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// instance is one incident stream of a policy (one per group_by key).
type instance struct {
	key    string
	labels map[string]string
	state  State
	since  time.Time // entered the current state

	condTrue     bool      // sample policies: the last evaluation's result
	pendingSince time.Time // start of `for`
	trigger      Event     // the event that woke it (event policies)
	hasTrigger   bool
	occurrences  int
	clearAt      time.Time // keep_firing_for runs out; zero when not clearing
	resolvedAt   time.Time

	// the recovery ladder
	step, attempt int // current step (from 0) and attempts used in it
	consecFails   int
	lastAttempt   time.Time
	nextAttempt   time.Time // zero: none scheduled
	inflight      uint64    // decision ID of the attempt awaiting its result
	inflightStep  int
	inflightDue   time.Time  // the attempt's timeout
	awaitUntil    time.Time  // after a success: how long resolve_on has to arrive
	verifyAt      time.Time  // event policy without resolve_on: next re-check of the condition (verify.go)
	provisional   bool       // such a policy's last attempt succeeded and awaits confirmation
	succeeded     AttemptRef // the last attempt that reported success, for provisional and not_held
	exhausted     bool
	escalated     bool
	severity      policies.Severity

	failures     []time.Time // for the breaker, within its window
	rearms       []time.Time // re-arms of an exhausted ladder, within rearm.per
	breakerUntil time.Time

	limiter          *bucket
	suppressed       int
	notifiedFiring   bool
	notifiedSeverity policies.Severity // of the last firing/escalated notification delivered
	lastNotified     time.Time
	lastWord         State // what the last notification delivered said (firing, escalated, resolved)
	inhibited        bool  // the last notification was held by an inhibiting policy
	flap             flapState

	// the timer heap's bookkeeping (timers.go)
	due    time.Time
	dueSeq uint64
	dirty  bool
}

// OverflowKey is the instance that takes every new group_by value once a policy has
// max_instances instances; its group labels read OverflowKey.
const OverflowKey = "_overflow"

// instanceFor returns the instance for a new key, or the overflow instance when the
// policy is at its max_instances, deciding InstanceLimit when that one is created.
func (e *Engine) instanceFor(ps *policyState, key string, eventLabels map[string]string) *instance {
	lim := ps.p.MaxInstances
	if lim <= 0 || len(ps.p.GroupBy) == 0 || len(ps.instances) < lim {
		return e.newInstance(ps, key, eventLabels)
	}
	if inst := ps.instances[OverflowKey]; inst != nil {
		return inst
	}
	over := make(map[string]string, len(ps.p.GroupBy))
	for _, g := range ps.p.GroupBy {
		over[g] = OverflowKey
	}
	inst := e.newInstance(ps, OverflowKey, over)
	if !ps.limitHit {
		ps.limitHit = true
		e.emitState(ps, inst, InstanceLimit, "max_instances "+strconv.Itoa(lim)+
			" reached: further group_by values share the instance "+OverflowKey)
	}
	return inst
}

func (e *Engine) newInstance(ps *policyState, key string, eventLabels map[string]string) *instance {
	labels := make(map[string]string, len(ps.p.Labels)+len(ps.p.GroupBy))
	for k, v := range ps.p.Labels {
		labels[k] = v
	}
	for _, g := range ps.p.GroupBy {
		if v, ok := eventLabels[g]; ok {
			labels[g] = v
		}
	}
	inst := &instance{key: key, labels: labels, state: Inactive, severity: ps.p.Severity, since: e.now}
	ps.instances[key] = inst
	e.touch(ps, inst)
	return inst
}

// deadline is the instance's next timer at now.
func (inst *instance) deadline(p *policies.Policy, grace time.Duration, now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if inst.state == Pending && (inst.condTrue || !p.IsSample()) {
		consider(inst.pendingSince.Add(p.For))
	}
	if inst.state == Firing {
		consider(inst.clearAt)
		if inst.inflight != 0 {
			consider(inst.inflightDue.Add(grace))
		} else {
			consider(inst.nextAttempt)
			consider(inst.awaitUntil)
			consider(inst.verifyAt)
		}
		if p.Alert.Repeat > 0 && inst.notifiedFiring {
			consider(inst.lastNotified.Add(p.Alert.Repeat))
		}
	}
	consider(inst.breakerUntil)
	consider(inst.flapEndAt(p))
	if inst.suppressed > 0 && inst.limiter != nil && inst.state == Firing {
		// The rate limit's window passes: the firing it held is told then.
		consider(inst.limiter.tokenAt(now))
	}
	if (inst.state == Inactive || inst.state == Resolved) && inst.suppressed == 0 {
		// An instant policy's held occurrences are told with its next notification,
		// so such an instance is kept until then.
		consider(inst.forgetAt(p, now))
	}
	return next
}

// forgetAt is when an inactive or resolved instance holds nothing a fresh one would not:
// its ladder place is past stable_for, its breaker window is empty and its rate-limit
// bucket is full. It is collected then, so the number of instances kept follows the
// incidents that are live, not every label value ever seen.
func (inst *instance) forgetAt(p *policies.Policy, now time.Time) time.Time {
	t := inst.since
	later := func(u time.Time) {
		if u.After(t) {
			t = u
		}
	}
	if !inst.resolvedAt.IsZero() && len(p.Actions) > 0 {
		later(inst.resolvedAt.Add(p.StableFor))
	}
	if p.Breaker != nil && len(inst.failures) > 0 {
		later(inst.failures[len(inst.failures)-1].Add(p.Breaker.Within))
	}
	if inst.limiter != nil {
		later(inst.limiter.fullAt(now))
	}
	if n := len(inst.flap.Changes); n > 0 && len(p.Alert.NotifyOn) > 0 {
		// A flap's changes count for its window (flap.go); without notifications there
		// is nothing to fold, and nothing to keep the instance for.
		later(inst.flap.Changes[n-1].Add(p.Alert.Flapping.Window))
	}
	return t
}

// collectible reports whether the instance can be forgotten at now.
func (inst *instance) collectible(p *policies.Policy, now time.Time) bool {
	return (inst.state == Inactive || inst.state == Resolved) && inst.inflight == 0 && inst.breakerUntil.IsZero() &&
		inst.suppressed == 0 && !inst.flap.Flapping && !now.Before(inst.forgetAt(p, now))
}

// advance handles whatever of the instance's timers are due at e.now.
func (e *Engine) advance(ps *policyState, inst *instance) {
	p, now := ps.p, e.now
	if end := inst.flapEndAt(p); !end.IsZero() && !now.Before(end) {
		e.flapEnd(ps, inst)
	}
	if inst.suppressed > 0 && inst.limiter != nil && inst.state == Firing && inst.limiter.hasToken(now) {
		e.notify(ps, inst, inst.lastFiringState(), true, "still firing; held back by the rate limit until now")
	}
	if !inst.breakerUntil.IsZero() && !now.Before(inst.breakerUntil) {
		inst.breakerUntil = time.Time{}
		inst.failures = inst.failures[:0]
		e.emitState(ps, inst, BreakerClosed, "breaker closed: automatic recovery allowed again")
	}
	switch inst.state {
	case Pending:
		if now.Before(inst.pendingSince.Add(p.For)) {
			return
		}
		if p.IsSample() {
			if inst.condTrue {
				e.fire(ps, inst, "condition held for "+p.For.String())
			}
			return
		}
		// An event policy re-checks its condition when `for` runs out, so that an event
		// arriving in the meantime (a logout after a disconnect) can cancel it.
		tr := &inst.trigger
		e.rt.SetEvent(tr.Code, tr.Source, tr.Message, tr.Value, tr.Labels)
		e.rt.SetLabels(inst.labels)
		if e.eval(ps, inst.key) {
			e.fire(ps, inst, "still true after "+p.For.String())
		} else {
			e.setState(ps, inst, Inactive, "condition no longer true after "+p.For.String())
		}
	case Firing:
		if !inst.clearAt.IsZero() && !now.Before(inst.clearAt) {
			e.resolve(ps, inst, "condition clear for keep_firing_for "+p.KeepFiringFor.String())
			return
		}
		if inst.inflight != 0 && !now.Before(inst.inflightDue.Add(e.opts.ResultGrace)) {
			e.attemptFailed(ps, inst, CodeActionTimeout, "no result reported within the timeout")
		}
		if !inst.awaitUntil.IsZero() && !now.Before(inst.awaitUntil) {
			inst.awaitUntil = time.Time{}
			// Already clearing (keep_firing_for runs): the success worked.
			if inst.clearAt.IsZero() {
				msg := "the action reported success, but none of resolve_on arrived within its timeout"
				if p.IsSample() {
					msg = "the action reported success, but the condition still holds after its timeout"
				}
				e.notHeld(ps, inst, msg)
			}
		}
		if inst.state == Firing && inst.inflight == 0 && !inst.verifyAt.IsZero() && !now.Before(inst.verifyAt) {
			e.verify(ps, inst)
		}
		if inst.state == Firing && inst.inflight == 0 && !inst.nextAttempt.IsZero() && !now.Before(inst.nextAttempt) {
			e.attempt(ps, inst)
		}
		if inst.state == Firing && p.Alert.Repeat > 0 && inst.notifiedFiring && !now.Before(inst.lastNotified.Add(p.Alert.Repeat)) {
			e.notify(ps, inst, Firing, true, "still firing")
		}
	}
}

// trigger handles a matching event for an event policy.
func (e *Engine) trigger(ps *policyState, inst *instance, ev *Event) {
	p := ps.p
	switch inst.state {
	case Pending:
		inst.occurrences++
	case Firing:
		inst.occurrences++
		if !inst.clearAt.IsZero() {
			inst.clearAt = time.Time{}
			e.touch(ps, inst)
		}
		if inst.exhausted && e.verifies(p) {
			// The fault is still reported: the quiet that would resolve it starts again.
			inst.verifyAt = e.now.Add(verifyEvery(p, inst))
			e.touch(ps, inst)
		}
		if inst.provisional {
			e.notHeld(ps, inst, "the action reported success, but "+ev.Code+" came again "+
				e.now.Sub(inst.lastAttempt).String()+" after the attempt started")
		}
	default:
		inst.trigger, inst.hasTrigger = *ev, true
		inst.occurrences = 1
		if p.For > 0 {
			inst.pendingSince = e.now
			e.setState(ps, inst, Pending, "condition true; waiting "+p.For.String())
			return
		}
		e.fire(ps, inst, "condition true")
	}
}

// sampleResult moves a sample policy's instance by its condition.
func (e *Engine) sampleResult(ps *policyState, inst *instance, ok bool) {
	p := ps.p
	inst.condTrue = ok
	switch inst.state {
	case Inactive, Resolved:
		if !ok {
			return
		}
		if p.For > 0 {
			inst.pendingSince = e.now
			e.setState(ps, inst, Pending, "condition true; waiting "+p.For.String())
			return
		}
		e.fire(ps, inst, "condition true")
	case Pending:
		if !ok {
			e.setState(ps, inst, Inactive, "condition false before "+p.For.String())
			return
		}
		e.touch(ps, inst)
		if !e.now.Before(inst.pendingSince.Add(p.For)) {
			e.fire(ps, inst, "condition held for "+p.For.String())
		}
	case Firing:
		switch {
		case ok && !inst.clearAt.IsZero():
			inst.clearAt = time.Time{}
			e.touch(ps, inst)
		case !ok && p.KeepFiringFor == 0:
			e.resolve(ps, inst, "condition false")
		case !ok && inst.clearAt.IsZero():
			inst.clearAt = e.now.Add(p.KeepFiringFor)
			e.touch(ps, inst)
		}
	}
}

// resolveByEvent handles a resolve_on event: it resolves the instance with the event's
// group labels, or every instance if the event carries none of them.
func (e *Engine) resolveByEvent(ps *policyState, ev *Event) {
	p := ps.p
	has := false
	for _, g := range p.GroupBy {
		_, ok := ev.Labels[g]
		has = has || ok
	}
	if has || len(p.GroupBy) == 0 {
		if inst := ps.instances[e.key(ps, ev.Labels)]; inst != nil {
			e.clear(ps, inst, "resolved by "+ev.Code)
		}
		return
	}
	for _, key := range ps.sortedKeys() {
		e.clear(ps, ps.instances[key], "resolved by "+ev.Code)
	}
}

// clear ends a pending or firing instance, honouring keep_firing_for.
func (e *Engine) clear(ps *policyState, inst *instance, why string) {
	switch inst.state {
	case Pending:
		e.setState(ps, inst, Inactive, why)
	case Firing:
		if ps.p.KeepFiringFor > 0 {
			if inst.clearAt.IsZero() {
				inst.clearAt = e.now.Add(ps.p.KeepFiringFor)
				e.touch(ps, inst)
			}
			return
		}
		e.resolve(ps, inst, why)
	}
}

func (e *Engine) fire(ps *policyState, inst *instance, why string) {
	p := ps.p
	// Ladder counters survive a resolution shorter than stable_for, so a flapping
	// target climbs the ladder and backs off instead of starting over each time.
	if inst.resolvedAt.IsZero() || e.now.Sub(inst.resolvedAt) >= p.StableFor {
		inst.step, inst.attempt, inst.consecFails = 0, 0, 0
		inst.lastAttempt, inst.exhausted = time.Time{}, false
	}
	inst.escalated, inst.severity = false, p.Severity
	inst.clearAt = time.Time{}
	ps.firing++
	ps.lastFired = e.now
	e.setState(ps, inst, Firing, why)
	e.flapChange(ps, inst)
	if p.Alert.Notifies("firing") {
		e.notify(ps, inst, Firing, false, why)
	}
	if p.IsInstant() {
		// Fires and resolves on each event; no resolved notification.
		ps.firing--
		inst.state, inst.since = Inactive, e.now
		return
	}
	if len(p.Actions) > 0 {
		e.scheduleOnFire(ps, inst)
	}
}

func (e *Engine) resolve(ps *policyState, inst *instance, why string) {
	if inst.state != Firing {
		return
	}
	ps.firing--
	inst.resolvedAt = e.now
	inst.consecFails = 0
	inst.inflight, inst.nextAttempt, inst.clearAt, inst.awaitUntil = 0, time.Time{}, time.Time{}, time.Time{}
	inst.verifyAt, inst.provisional = time.Time{}, false
	e.setState(ps, inst, Resolved, why)
	e.flapChange(ps, inst)
	e.end(ps, inst, why)
	inst.notifiedFiring, inst.inhibited = false, false
	// Not only when the last instance resolves: under a rule with equal labels, one
	// session's logout resolving releases that session's held alerts while another
	// session's logout still fires. releaseInhibited checks only held instances.
	e.releaseInhibited(ps.p.Name)
}

func (e *Engine) setState(ps *policyState, inst *instance, s State, why string) {
	inst.state, inst.since = s, e.now
	e.touch(ps, inst)
	e.emitState(ps, inst, s, why)
}

func (e *Engine) emitState(ps *policyState, inst *instance, s State, why string) {
	d := e.decision(ps, inst, KindState, why)
	d.State = s
	e.out = append(e.out, d)
}

func (e *Engine) decision(ps *policyState, inst *instance, k Kind, why string) Decision {
	e.seq++
	r := Reason{Text: why, Input: e.describeInput()}
	// Values are shown for decisions made on an input; on a timer the environment
	// belongs to whatever was evaluated last.
	if ps.p.Cond != nil && e.cur != nil {
		// The instance's own counts (a resolve_on event may end instances other than the
		// one last evaluated).
		e.rt.SetLabels(inst.labels)
		r.Values = e.rt.Explain(ps.p.Cond, e.now)
	}
	return Decision{ID: e.seq, Time: e.now, Kind: k, Policy: ps.p.Name, Instance: inst.key,
		Labels: inst.labels, Severity: inst.severity, Reason: r}
}
