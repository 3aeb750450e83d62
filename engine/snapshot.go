package engine

import (
	"sort"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// Snapshot is the engine's incident state, serialisable as JSON: every instance with
// its state, `for` and `keep_firing_for` timers, ladder place and next attempt, breaker,
// rate-limit bucket and what it last notified, plus the clock, the decision sequence
// and the jitter source. History windows are not in it: they are rebuilt from the
// recorded inputs (Warm). The daemon persists one after its decisions and restores it
// at start, so a restart continues backoffs, breakers and budgets instead of resetting
// them (Prometheus restores `for` state the same way; Monit keeps a state file).
type Snapshot struct {
	Version  int              `json:"version"`
	Now      time.Time        `json:"now"`
	Seq      uint64           `json:"seq"`
	Rand     []byte           `json:"rand"`
	Policies []PolicySnapshot `json:"policies"`
}

// SnapshotVersion is the version Snapshot writes and Restore reads.
const SnapshotVersion = 1

// PolicySnapshot is one policy's instances; Hash is its definition's identity.
type PolicySnapshot struct {
	Name      string             `json:"name"`
	Hash      string             `json:"hash"`
	LastFired time.Time          `json:"last_fired,omitzero"`
	LimitHit  bool               `json:"limit_hit,omitempty"`
	Instances []InstanceSnapshot `json:"instances"`
}

// InstanceSnapshot is one instance's state (see instance).
type InstanceSnapshot struct {
	Key              string            `json:"key"`
	Labels           map[string]string `json:"labels,omitempty"`
	State            State             `json:"state"`
	Since            time.Time         `json:"since"`
	CondTrue         bool              `json:"cond_true,omitempty"`
	PendingSince     time.Time         `json:"pending_since,omitzero"`
	Trigger          *Event            `json:"trigger,omitempty"`
	Occurrences      int               `json:"occurrences,omitempty"`
	ClearAt          time.Time         `json:"clear_at,omitzero"`
	ResolvedAt       time.Time         `json:"resolved_at,omitzero"`
	Step             int               `json:"step,omitempty"`
	Attempt          int               `json:"attempt,omitempty"`
	ConsecFails      int               `json:"consec_fails,omitempty"`
	LastAttempt      time.Time         `json:"last_attempt,omitzero"`
	NextAttempt      time.Time         `json:"next_attempt,omitzero"`
	Inflight         uint64            `json:"inflight,omitempty"`
	InflightStep     int               `json:"inflight_step,omitempty"`
	InflightDue      time.Time         `json:"inflight_due,omitzero"`
	AwaitUntil       time.Time         `json:"await_until,omitzero"`
	VerifyAt         time.Time         `json:"verify_at,omitzero"`
	Provisional      bool              `json:"provisional,omitempty"`
	Succeeded        AttemptRef        `json:"succeeded,omitzero"`
	Exhausted        bool              `json:"exhausted,omitempty"`
	Escalated        bool              `json:"escalated,omitempty"`
	Severity         policies.Severity `json:"severity"`
	Failures         []time.Time       `json:"failures,omitempty"`
	BreakerUntil     time.Time         `json:"breaker_until,omitzero"`
	Rearms           []time.Time       `json:"rearms,omitempty"`
	Limiter          *bucket           `json:"limiter,omitempty"`
	Suppressed       int               `json:"suppressed,omitempty"`
	NotifiedFiring   bool              `json:"notified_firing,omitempty"`
	NotifiedSeverity policies.Severity `json:"notified_severity,omitempty"`
	LastNotified     time.Time         `json:"last_notified,omitzero"`
	LastWord         State             `json:"last_word,omitempty"`
	Inhibited        bool              `json:"inhibited,omitempty"`
	Flap             *flapState        `json:"flap,omitempty"`
}

// Snapshot returns the engine's state, policies in set order and instances by key.
func (e *Engine) Snapshot() Snapshot {
	rb, _ := e.pcg.MarshalBinary()
	s := Snapshot{Version: SnapshotVersion, Now: e.now, Seq: e.seq, Rand: rb}
	for _, ps := range e.pols {
		pss := PolicySnapshot{Name: ps.p.Name, Hash: ps.p.Hash, LastFired: ps.lastFired, LimitHit: ps.limitHit,
			Instances: make([]InstanceSnapshot, 0, len(ps.instances))}
		for _, key := range ps.sortedKeys() {
			pss.Instances = append(pss.Instances, ps.instances[key].snapshot())
		}
		s.Policies = append(s.Policies, pss)
	}
	return s
}

func (inst *instance) snapshot() InstanceSnapshot {
	is := InstanceSnapshot{Key: inst.key, Labels: inst.labels, State: inst.state, Since: inst.since, CondTrue: inst.condTrue,
		PendingSince: inst.pendingSince, Occurrences: inst.occurrences, ClearAt: inst.clearAt, ResolvedAt: inst.resolvedAt,
		Step: inst.step, Attempt: inst.attempt, ConsecFails: inst.consecFails, LastAttempt: inst.lastAttempt,
		NextAttempt: inst.nextAttempt, Inflight: inst.inflight, InflightStep: inst.inflightStep, InflightDue: inst.inflightDue,
		AwaitUntil: inst.awaitUntil, VerifyAt: inst.verifyAt, Provisional: inst.provisional, Succeeded: inst.succeeded, Exhausted: inst.exhausted, Escalated: inst.escalated, Severity: inst.severity,
		Failures: append([]time.Time(nil), inst.failures...), BreakerUntil: inst.breakerUntil, Suppressed: inst.suppressed,
		Rearms:         append([]time.Time(nil), inst.rearms...),
		NotifiedFiring: inst.notifiedFiring, NotifiedSeverity: inst.notifiedSeverity, LastNotified: inst.lastNotified,
		LastWord: inst.lastWord, Inhibited: inst.inhibited}
	if inst.hasTrigger {
		tr := inst.trigger
		is.Trigger = &tr
	}
	if len(inst.flap.Changes) > 0 {
		f := inst.flap
		f.Changes = append([]time.Time(nil), f.Changes...)
		is.Flap = &f
	}
	if inst.limiter != nil {
		b := *inst.limiter
		is.Limiter = &b
	}
	return is
}

func (is InstanceSnapshot) instance() *instance {
	inst := &instance{key: is.Key, labels: is.Labels, state: is.State, since: is.Since, condTrue: is.CondTrue,
		pendingSince: is.PendingSince, occurrences: is.Occurrences, clearAt: is.ClearAt, resolvedAt: is.ResolvedAt,
		step: is.Step, attempt: is.Attempt, consecFails: is.ConsecFails, lastAttempt: is.LastAttempt,
		nextAttempt: is.NextAttempt, inflight: is.Inflight, inflightStep: is.InflightStep, inflightDue: is.InflightDue,
		awaitUntil: is.AwaitUntil, verifyAt: is.VerifyAt, provisional: is.Provisional, succeeded: is.Succeeded, exhausted: is.Exhausted, escalated: is.Escalated, severity: is.Severity,
		failures: is.Failures, breakerUntil: is.BreakerUntil, suppressed: is.Suppressed, rearms: is.Rearms, notifiedFiring: is.NotifiedFiring,
		notifiedSeverity: is.NotifiedSeverity, lastNotified: is.LastNotified, lastWord: is.LastWord, inhibited: is.Inhibited}
	if inst.labels == nil {
		inst.labels = map[string]string{}
	}
	if is.Trigger != nil {
		inst.trigger, inst.hasTrigger = *is.Trigger, true
	}
	if is.Flap != nil {
		inst.flap = *is.Flap
	}
	if is.Limiter != nil {
		b := *is.Limiter
		inst.limiter = &b
	}
	return inst
}

// Restore loads a snapshot into an engine running the current policy set, with the
// reload's identity rules (Swap): a policy whose definition (hash) is unchanged gets its
// instances back — timers, ladders, breakers and budgets continue where they stopped;
// the notified firing incidents of a policy that changed or is gone are resolved, and
// those decisions are returned to be handled like Process's. Restore is meant for a
// fresh engine, before its first input; the engine's clock becomes the snapshot's if
// that is later. A snapshot of another version is ignored (nil).
func (e *Engine) Restore(s Snapshot) []Decision {
	if s.Version != SnapshotVersion {
		return nil
	}
	if s.Now.After(e.now) {
		e.now = s.Now
	}
	e.seq = max(e.seq, s.Seq)
	if len(s.Rand) > 0 {
		_ = e.pcg.UnmarshalBinary(s.Rand)
	}
	e.out = e.out[:0]
	for _, pss := range s.Policies {
		ps := e.named[pss.Name]
		if ps != nil && ps.p.Hash == pss.Hash {
			ps.instances = make(map[string]*instance, len(pss.Instances))
			ps.firing, ps.lastFired, ps.limitHit, ps.flapping = 0, pss.LastFired, pss.LimitHit, 0
			for _, is := range pss.Instances {
				inst := is.instance()
				ps.instances[inst.key] = inst
				if inst.state == Firing {
					ps.firing++
				}
				if inst.flap.Flapping {
					ps.flapping++
				}
			}
			continue
		}
		why := "policy removed while remedy was stopped"
		if ps != nil {
			why = "policy changed while remedy was stopped; its incidents start over"
		}
		for _, is := range pss.Instances {
			if is.State != Firing || !is.NotifiedFiring {
				continue
			}
			for _, k := range []Kind{KindState, KindAlert} {
				e.seq++
				d := Decision{ID: e.seq, Time: e.now, Kind: k, Policy: pss.Name, Instance: is.Key, Labels: is.Labels,
					Severity: is.Severity, State: Resolved, Reason: Reason{Text: why, Input: "restore"}}
				if k == KindAlert {
					d.Alert = &AlertNote{Summary: pss.Name + " resolved"}
				}
				e.out = append(e.out, d)
			}
		}
	}
	e.rebuildTimers()
	return append([]Decision(nil), e.out...)
}

// Warm replays recorded inputs into the history windows (count, rate, *_over, since)
// without evaluating any policy, so the windows are whole again after a restart. Give
// it the inputs of the last Longest(), oldest first.
func (e *Engine) Warm(inputs []Input) {
	sort.SliceStable(inputs, func(i, j int) bool { return inputs[i].At().Before(inputs[j].At()) })
	for _, in := range inputs {
		switch x := in.(type) {
		case Event:
			e.rt.ObserveEvent(x.Time, x.Code, x.Source, x.Message, x.Value, x.Labels)
		case Sample:
			e.rt.ObserveSample(x.Time, x.Values)
		}
	}
	e.rt.ClearEvent()
}

// Longest is how far back Warm needs recorded inputs: the longest history window the
// policies read.
func (e *Engine) Longest() time.Duration { return e.rt.Longest() }
