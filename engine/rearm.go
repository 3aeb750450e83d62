package engine

import (
	"strconv"
	"time"
)

// rearm restarts an exhausted ladder from its first step when one of the policy's
// retry_on events arrives and the policy allows it (policies.Rearm): the cause of the
// failures may have gone away by itself. At most rearm.count re-arms per instance within
// any rearm.per window; past the limit the ladder stays exhausted. An open breaker still
// holds the first attempt back (attempt records it as skipped). The instance keeps its
// escalated severity: it is the same incident.
func (e *Engine) rearm(ps *policyState, inst *instance, code string) {
	r := ps.p.Rearm
	if r == nil || inst.state != Firing || !inst.exhausted || len(ps.p.Actions) == 0 {
		return
	}
	cutoff := e.now.Add(-r.Per)
	kept := inst.rearms[:0]
	for _, t := range inst.rearms {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	inst.rearms = kept
	if len(inst.rearms) >= r.Count {
		return
	}
	inst.rearms = append(inst.rearms, e.now)
	inst.exhausted = false
	inst.step, inst.attempt = 0, 0
	inst.nextAttempt, inst.awaitUntil = e.now, time.Time{}
	e.touch(ps, inst)
	e.emitState(ps, inst, Firing, "ladder re-armed by "+code+" ("+strconv.Itoa(len(inst.rearms))+" of "+
		strconv.Itoa(r.Count)+" per "+r.Per.String()+")")
	e.attempt(ps, inst)
}
