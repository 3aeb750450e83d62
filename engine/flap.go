package engine

import (
	"fmt"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// Flap detection lives in the engine, not in the alert pipeline: the engine owns
// incident state (ARCHITECTURE.md, "Incident state has one owner") and already decides
// which notifications go out (notify: rate limit, inhibition), so "flapping" is one more
// state of an instance, persisted with it, shown by Status and counted in Counts like
// firing. The pipeline only delivers; were it to fold notifications it would keep a
// second, parallel idea of the incident's state, and a dry run or replay (which share
// the engine, not the pipeline) would not show the flapping.
//
// The rule, per instance of a non-instant policy with alert.flapping.threshold > 0:
//   - each fire and each resolve is a state change; the changes within window are kept;
//   - reaching threshold changes starts flapping: one notification of the current state
//     goes out (annotated "flapping"), then every notification is held and counted;
//   - flapping ends once the state has held for settle (by default twice the longest a
//     state held while flapping: hysteresis, as Icinga's low threshold below its high
//     one). Then one notification tells the settled state if it is not what the last one
//     said, with the held count, so the last word delivered is always the current state;
//   - the changes are then forgotten: a new flap needs threshold new changes.
// So a burst of changes costs at most threshold+1 notifications, however long it lasts.

// flapState is one instance's flap detection; its fields are exported for the snapshot.
type flapState struct {
	Changes  []time.Time   `json:"changes,omitempty"` // state changes within the window, oldest first
	Flapping bool          `json:"flapping,omitempty"`
	Since    time.Time     `json:"since,omitzero"`    // flapping since
	Held     int           `json:"held,omitempty"`    // notifications held while flapping
	Longest  time.Duration `json:"longest,omitempty"` // the longest a state held while flapping
	announce bool          // the next notification is the flap's first (it goes out)
}

// flapChange records a state change (a fire or a resolve) at e.now, before its
// notification is decided, and starts flapping at the threshold.
func (e *Engine) flapChange(ps *policyState, inst *instance) {
	f := ps.p.Alert.Flapping
	if f.Threshold <= 0 || ps.p.IsInstant() {
		return
	}
	fl := &inst.flap
	if n := len(fl.Changes); n > 0 && fl.Flapping {
		fl.Longest = max(fl.Longest, e.now.Sub(fl.Changes[n-1]))
	}
	fl.Changes = append(fl.Changes, e.now)
	drop := 0
	for drop < len(fl.Changes) && !fl.Changes[drop].After(e.now.Add(-f.Window)) {
		drop++
	}
	fl.Changes = append(fl.Changes[:0], fl.Changes[drop:]...)
	if !fl.Flapping && len(fl.Changes) >= f.Threshold {
		fl.Flapping, fl.Since, fl.Held, fl.announce = true, e.now, 0, true
		fl.Longest = 0
		for i := 1; i < len(fl.Changes); i++ {
			fl.Longest = max(fl.Longest, fl.Changes[i].Sub(fl.Changes[i-1]))
		}
		ps.flapping++
		e.emitState(ps, inst, Flapping, fmt.Sprintf("flapping: %d state changes within %s; notifications are held until it settles (%s without a change)",
			len(fl.Changes), f.Window, inst.flapSettle(ps.p)))
	}
	e.touch(ps, inst)
}

// flapHold reports whether a notification is held because the instance is flapping
// (counting it); the flap's first notification passes and is marked.
func (e *Engine) flapHold(inst *instance) (held, first bool) {
	fl := &inst.flap
	if !fl.Flapping {
		return false, false
	}
	if fl.announce {
		fl.announce = false
		return false, true
	}
	fl.Held++
	e.stats.Suppressed++
	return true, false
}

// flapSettle is how long the state must hold to end the instance's flapping.
func (inst *instance) flapSettle(p *policies.Policy) time.Duration {
	f := p.Alert.Flapping
	if f.Settle > 0 {
		return f.Settle
	}
	return min(max(2*inst.flap.Longest, policies.DefaultFlapSettleMin), f.Window)
}

// flapEndAt is when a flapping instance's flapping ends if nothing changes (zero if
// it is not flapping).
func (inst *instance) flapEndAt(p *policies.Policy) time.Time {
	fl := &inst.flap
	if !fl.Flapping || len(fl.Changes) == 0 {
		return time.Time{}
	}
	return fl.Changes[len(fl.Changes)-1].Add(inst.flapSettle(p))
}

// flapEnd ends flapping once the state has held for settle, and makes the last word
// delivered the current state.
func (e *Engine) flapEnd(ps *policyState, inst *instance) {
	fl := &inst.flap
	held := fl.Held
	settle := inst.flapSettle(ps.p)
	*fl = flapState{}
	ps.flapping--
	e.touch(ps, inst)
	why := fmt.Sprintf("flapping ended: no state change for %s; %d notification(s) held meanwhile", settle, held)
	e.emitState(ps, inst, FlapEnded, why)
	p := ps.p
	switch {
	case inst.state == Firing:
		// What the pipeline holds: a firing if that was the last word, whatever was
		// held since, so the resolve that follows is told.
		inst.notifiedFiring = inst.lastWord == Firing || inst.lastWord == Escalated
		s := inst.lastFiringState()
		if inst.lastWord == s || !p.Alert.Notifies(string(Firing)) {
			return
		}
		inst.suppressed += held
		e.notifyFlapEnd(ps, inst, s, why)
	case inst.lastWord == Firing || inst.lastWord == Escalated:
		// Resolved while the last word delivered says firing.
		if p.Alert.Notifies(string(Resolved)) {
			inst.suppressed += held
			e.notifyFlapEnd(ps, inst, Resolved, why)
			return
		}
		d := e.alertDecision(ps, inst, Resolved, false, why)
		d.Alert.Held = "not notified: resolved is not in notify_on"
		inst.lastWord = Resolved
		e.out = append(e.out, d)
	}
}

// notifyFlapEnd notifies s, annotated as the end of a flap.
func (e *Engine) notifyFlapEnd(ps *policyState, inst *instance, s State, why string) {
	n := len(e.out)
	e.notify(ps, inst, s, false, why)
	if len(e.out) > n && e.out[len(e.out)-1].Kind == KindAlert {
		annotate(&e.out[len(e.out)-1], "flapping", "ended")
	}
}

func annotate(d *Decision, k, v string) {
	if d.Alert.Annotations == nil {
		d.Alert.Annotations = map[string]string{}
	}
	d.Alert.Annotations[k] = v
}
