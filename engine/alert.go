package engine

import (
	"github.com/remedy-run/remedy/policies"
)

// notify emits an alert decision unless the instance's token bucket (bucket.go, driven by
// input time, so as deterministic as the rest) is empty, in which case the notification
// is counted and reported with the next one delivered. A notification that an inhibiting
// policy holds is recorded as held (inhibit.go) and takes no token. Two kinds always go out, though they still take a token: resolved (a held-back
// "resolved" leaves a human believing the incident is open) and a notification more
// severe than the last one delivered (a rate limit must never hide a worse problem).
// Neither is a firing held back when the last word delivered was "resolved": what an
// operator read last must be true. What the bucket holds back is told when it refills
// (see advance).
func (e *Engine) notify(ps *policyState, inst *instance, s State, repeat bool, why string) {
	p := ps.p
	rl := p.Alert.RateLimit
	if inst.limiter == nil && rl.Count > 0 && rl.Per > 0 {
		inst.limiter = newBucket(rl.Count, rl.Per)
	}
	if repeat {
		// The repeat timer restarts whether or not this one is held back.
		inst.lastNotified = e.now
		e.touch(ps, inst)
	}
	// "Worse" is measured against the last notification while it is recent, that is
	// until the bucket has refilled; a flapping target that re-escalates each time is
	// not worse than what it reported a minute ago.
	recent := inst.notifiedSeverity
	if inst.limiter != nil && inst.limiter.full(e.now) {
		recent = ""
	}
	if s != Resolved {
		if by := e.inhibitedBy(ps, inst); by != "" {
			// Recorded, not sent; told when the inhibiting incident resolves.
			d := e.alertDecision(ps, inst, s, repeat, why)
			d.Alert.Held = "inhibited by " + by
			inst.inhibited = true
			e.out = append(e.out, d)
			return
		}
	}
	held, first := e.flapHold(inst)
	if held {
		return // told when the flapping ends (flap.go)
	}
	worse := inst.severity.Rank() > recent.Rank()
	contradicts := s != Resolved && inst.lastWord == Resolved && !p.IsInstant()
	if inst.limiter != nil && !inst.limiter.take(e.now) && s != Resolved && !worse && !contradicts && !first {
		inst.suppressed++
		e.stats.Suppressed++
		return
	}
	d := e.alertDecision(ps, inst, s, repeat, why)
	if first {
		annotate(&d, "flapping", "started: notifications are held until it settles")
	}
	inst.suppressed = 0
	inst.inhibited = false
	inst.lastNotified = e.now
	inst.lastWord = s
	if s == Firing || s == Escalated {
		inst.notifiedFiring = !p.IsInstant()
		inst.notifiedSeverity = inst.severity
	}
	e.touch(ps, inst)
	e.out = append(e.out, d)
}

func (e *Engine) alertDecision(ps *policyState, inst *instance, s State, repeat bool, why string) Decision {
	p := ps.p
	d := e.decision(ps, inst, KindAlert, why)
	d.State = s
	d.Alert = &AlertNote{Channels: p.Alert.Channels, Suppressed: inst.suppressed, Repeat: repeat, Instant: p.IsInstant()}
	d.Alert.Annotations = p.RenderAnnotations(e.templateData(ps, inst))
	d.Alert.Summary = d.Alert.Annotations["summary"]
	if d.Alert.Summary == "" {
		d.Alert.Summary = p.Description
	}
	if d.Alert.Summary == "" {
		d.Alert.Summary = p.Name + " " + string(s)
	}
	return d
}

func (e *Engine) templateData(ps *policyState, inst *instance) policies.TemplateData {
	labels := make(map[string]string, len(inst.labels)+len(inst.trigger.Labels))
	for k, v := range inst.trigger.Labels {
		labels[k] = v
	}
	for k, v := range inst.labels {
		labels[k] = v
	}
	data := policies.TemplateData{Policy: ps.p.Name, Labels: labels}
	if inst.hasTrigger {
		t := inst.trigger
		data.Event = map[string]any{"code": t.Code, "source": t.Source, "message": t.Message, "value": t.Value, "labels": t.Labels}
		data.Value = t.Value
	}
	return data
}

// lastFiringState is what a firing instance's notification is about.
func (inst *instance) lastFiringState() State {
	if inst.escalated {
		return Escalated
	}
	return Firing
}

// end closes, in the alert pipeline, an incident that resolved: a "resolved"
// notification if notify_on has it and the firing was sent; otherwise, if the pipeline
// was given the firing (sent, or held by an inhibition), a resolution recorded as held
// and sent nowhere — without it the pipeline would keep the incident open for ever
// (re-sent to Alertmanager every minute, acknowledgeable).
func (e *Engine) end(ps *policyState, inst *instance, why string) {
	switch {
	case ps.p.Alert.Notifies("resolved") && inst.notifiedFiring:
		e.notify(ps, inst, Resolved, false, why)
	case inst.notifiedFiring || inst.inhibited:
		d := e.alertDecision(ps, inst, Resolved, false, why)
		d.Alert.Held = "not notified: its firing was never sent"
		if inst.notifiedFiring {
			d.Alert.Held = "not notified: resolved is not in notify_on"
		}
		e.out = append(e.out, d)
	}
}
