package engine

import (
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/policies"
)

// PolicyStatus describes a policy and its instances, for the API and the rule view.
type PolicyStatus struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source"` // file:line:col
	On          []string          `json:"on"`
	When        string            `json:"when,omitempty"`
	Severity    policies.Severity `json:"severity"`
	Mode        policies.Mode     `json:"mode"`
	Enabled     bool              `json:"enabled"`
	Actions     []string          `json:"actions,omitempty"`
	// Inhibits describes the policy's inhibit rules ("wa-*, alert-undelivered", with
	// " where equal queue" when labels must match).
	Inhibits  []string   `json:"inhibits,omitempty"`
	Firing    int        `json:"firing"`
	Flapping  int        `json:"flapping,omitempty"` // instances flapping
	LastFired *time.Time `json:"last_fired,omitempty"`
	// OverBudget is when the condition last stopped at its evaluation budget and
	// BudgetError why (absent once an evaluation answers again).
	OverBudget  *time.Time       `json:"over_budget,omitempty"`
	BudgetError string           `json:"budget_error,omitempty"`
	Instances   []InstanceStatus `json:"instances"`
	// Example is an input that wakes the policy (see Example), for the Test box.
	Example map[string]any `json:"example"`
}

// InstanceStatus describes one instance.
type InstanceStatus struct {
	Key          string            `json:"key"`
	Labels       map[string]string `json:"labels,omitempty"`
	State        State             `json:"state"`
	Since        time.Time         `json:"since"`
	Severity     policies.Severity `json:"severity"`
	PendingUntil *time.Time        `json:"pending_until,omitempty"`
	Occurrences  int               `json:"occurrences,omitempty"`
	Step         int               `json:"step,omitempty"`     // from 1
	Attempts     int               `json:"attempts,omitempty"` // used in the step
	NextAttempt  *time.Time        `json:"next_attempt,omitempty"`
	InFlight     bool              `json:"in_flight,omitempty"`
	Escalated    bool              `json:"escalated,omitempty"`
	Exhausted    bool              `json:"exhausted,omitempty"`
	InhibitedBy  string            `json:"inhibited_by,omitempty"` // a firing instance whose notifications an inhibit rule holds
	Rearmed      int               `json:"rearmed,omitempty"`      // re-arms of an exhausted ladder still within rearm.per
	BreakerUntil *time.Time        `json:"breaker_until,omitempty"`
	// ProvisionalUntil is set while an action's reported success awaits confirmation: by
	// then the resolve_on event must have come, the condition turned false, or the fault
	// gone unreported (verify.go); otherwise the success did not hold.
	ProvisionalUntil *time.Time `json:"provisional_until,omitempty"`
	// FlappingSince is set while the instance flaps (alert.flapping): its notifications
	// are held (FlapHeld of them so far) until FlappingEnds, if no change comes first.
	FlappingSince *time.Time `json:"flapping_since,omitempty"`
	FlappingEnds  *time.Time `json:"flapping_ends,omitempty"`
	FlapHeld      int        `json:"flap_held,omitempty"`
}

func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Status describes every policy and instance. Like every method, it must be called by
// the engine's owner goroutine.
func (e *Engine) Status() []PolicyStatus {
	out := make([]PolicyStatus, 0, len(e.pols))
	for _, ps := range e.pols {
		p := ps.p
		st := PolicyStatus{Name: p.Name, Description: p.Description, Source: p.Pos.String(), On: p.On, When: p.When,
			Severity: p.Severity, Mode: p.Mode, Enabled: p.Enabled, Firing: ps.firing, Flapping: ps.flapping, LastFired: ptr(ps.lastFired),
			OverBudget: ptr(ps.overBudget), BudgetError: ps.budgetErr,
			Instances: []InstanceStatus{}}
		for _, a := range p.Actions {
			st.Actions = append(st.Actions, a.Do)
		}
		if ps.example == nil {
			ps.example = Example(p)
		}
		st.Example = ps.example
		for _, r := range p.Inhibits {
			txt := strings.Join(r.Policies, ", ")
			if len(r.Equal) > 0 {
				txt += " where equal " + strings.Join(r.Equal, ", ")
			}
			st.Inhibits = append(st.Inhibits, txt)
		}
		for _, inst := range ps.instances {
			is := InstanceStatus{Key: inst.key, Labels: inst.labels, State: inst.state, Since: inst.since, Severity: inst.severity,
				Occurrences: inst.occurrences, Attempts: inst.attempt, InFlight: inst.inflight != 0, Escalated: inst.escalated,
				Exhausted: inst.exhausted, BreakerUntil: ptr(inst.breakerUntil), Rearmed: len(inst.rearms)}
			if inst.state == Firing && inst.inhibited {
				is.InhibitedBy = e.inhibitedBy(ps, inst)
			}
			if inst.flap.Flapping {
				is.FlappingSince, is.FlappingEnds, is.FlapHeld = ptr(inst.flap.Since), ptr(inst.flapEndAt(p)), inst.flap.Held
			}
			if inst.state == Pending {
				is.PendingUntil = ptr(inst.pendingSince.Add(p.For))
			}
			if inst.state == Firing && inst.provisional {
				is.ProvisionalUntil = ptr(inst.verifyAt)
			} else if inst.state == Firing && !inst.awaitUntil.IsZero() {
				is.ProvisionalUntil = ptr(inst.awaitUntil)
			}
			if inst.state == Firing && len(p.Actions) > 0 && !inst.exhausted {
				is.Step = inst.step + 1
				is.NextAttempt = ptr(inst.nextAttempt)
			}
			st.Instances = append(st.Instances, is)
		}
		sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Key < st.Instances[j].Key })
		out = append(out, st)
	}
	return out
}

// TryResult is what one policy would decide on one input, from a fresh state.
type TryResult struct {
	Decisions []Decision
	Matched   bool               // the input was in the policy's on:
	Result    bool               // the condition's value
	Values    []conditions.Value // the identifiers it saw
	Err       error
}

// Try runs an input through a single policy with fresh state, in dry run: the dashboard's
// "test this policy" box. It does not touch any running engine.
func Try(p *policies.Policy, in Input, loc *time.Location) TryResult {
	dry := *p
	dry.Mode = policies.DryRun
	var res TryResult
	e := New(&policies.Set{Policies: []*policies.Policy{&dry}}, Options{Location: loc, Trace: func(tr Trace) {
		res.Matched, res.Result, res.Values, res.Err = true, tr.Result, tr.Values, tr.Err
	}})
	res.Decisions = append(res.Decisions, e.Process(in)...)
	if p.Cond == nil {
		res.Matched = len(res.Decisions) > 0
		res.Result = res.Matched
	}
	return res
}
