package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/policies"
)

// Kind says what a decision asks for.
type Kind string

// Decision kinds.
const (
	KindState  Kind = "state"  // an instance changed state; for the timeline
	KindAction Kind = "action" // run (or record, if skipped) one attempt of a step
	KindAlert  Kind = "alert"  // notify a human
)

// State is an instance's state, or a notable moment in its life.
type State string

// Instance states and moments.
const (
	Inactive      State = "inactive"
	Pending       State = "pending"
	Firing        State = "firing"
	Resolved      State = "resolved"
	Escalated     State = "escalated"      // severity raised after consecutive failures
	Exhausted     State = "exhausted"      // every step of the ladder used up
	BreakerOpen   State = "breaker_open"   // automatic recovery paused
	BreakerClosed State = "breaker_closed" // automatic recovery allowed again
	InstanceLimit State = "instance_limit" // max_instances reached; new group_by values share one instance
	// Provisional: an action reported success; the incident stays firing until the fault
	// is seen gone (verify.go). NotHeld: such a success was proved wrong (the fault was
	// reported again, or its evidence did not come in time) and counts as a failed
	// attempt. Both are moments for the timeline and the recovery-actions view.
	Provisional State = "provisional"
	NotHeld     State = "not_held"
	Flapping    State = "flapping"       // alert.flapping's threshold reached: notifications held (flap.go)
	FlapEnded   State = "flapping_ended" // the state held for alert.flapping.settle
	// EvalBudget: the condition stopped at its evaluation budget (conditions.EvalBudget)
	// and counts as not met; decided once until an evaluation answers again.
	EvalBudget State = "eval_budget"
)

// AttemptRef names one attempt of a recovery step: its action decision's ID, the action,
// and its step and attempt numbers (from 1).
type AttemptRef struct {
	ID            uint64
	Do            string
	Step, Attempt int
}

// Decision is what the engine decided, with why.
type Decision struct {
	ID       uint64
	Time     time.Time
	Kind     Kind
	Policy   string
	Instance string
	Labels   map[string]string
	Severity policies.Severity
	// State is the new state for KindState, and what the alert is about for KindAlert
	// (firing, escalated, resolved).
	State State
	// Of is, for the provisional and not_held moments, the attempt whose success they are
	// about (the audit and the dashboard fold them into that attempt's row); nil otherwise.
	Of     *AttemptRef `json:",omitempty"`
	Action *ActionCall
	Alert  *AlertNote
	Reason Reason
}

// ActionCall is one attempt of a recovery step.
type ActionCall struct {
	Do     string
	Params map[string]string
	// Templated names the Params rendered from templates (event data): an action checks
	// them again before it uses them (WEBHOOK's url against its allowed hosts).
	Templated []string `json:",omitempty"`
	Step      int      // from 1
	Attempt   int      // from 1, within the step
	Timeout   time.Duration
	// Skipped says why the attempt is recorded but must not run ("dry_run",
	// "breaker open until …"); empty means run it.
	Skipped string
}

// AlertNote is a notification.
type AlertNote struct {
	Channels    []string
	Summary     string
	Annotations map[string]string
	// Suppressed counts notifications of this instance held back by the rate limit
	// since the last one delivered.
	Suppressed int
	Repeat     bool
	// Instant marks an instant policy's notification: an occurrence, never resolved.
	Instant bool
	// Held says why the notification is recorded but not sent ("inhibited by P"); the
	// engine notifies again when the hold ends.
	Held string
}

// Reason explains a decision: the rule, the input and the values it saw.
type Reason struct {
	Text   string
	Input  string
	Values []conditions.Value
}

func (r Reason) String() string {
	var b strings.Builder
	b.WriteString(r.Text)
	if r.Input != "" {
		b.WriteString(" [")
		b.WriteString(r.Input)
		b.WriteString("]")
	}
	if len(r.Values) > 0 {
		b.WriteString(" where ")
		for i, v := range r.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.String())
		}
	}
	return b.String()
}

// String is a one-line description for logs and the tester's timeline.
func (d Decision) String() string {
	inst := ""
	if d.Instance != "" {
		inst = "{" + d.Instance + "}"
	}
	var what string
	switch d.Kind {
	case KindAction:
		a := d.Action
		what = fmt.Sprintf("action %s step %d attempt %d", a.Do, a.Step, a.Attempt)
		if len(a.Params) > 0 {
			what += " " + formatMap(a.Params)
		}
		if a.Skipped != "" {
			what += " (not run: " + a.Skipped + ")"
		}
	case KindAlert:
		what = fmt.Sprintf("alert %s %s", d.State, d.Severity)
		if d.Alert.Repeat {
			what += " (repeat)"
		}
		if d.Alert.Suppressed > 0 {
			what += fmt.Sprintf(" (+%d suppressed)", d.Alert.Suppressed)
		}
		if d.Alert.Held != "" {
			what += " (held: " + d.Alert.Held + ")"
		}
		if d.Alert.Summary != "" {
			what += ": " + d.Alert.Summary
		}
	default:
		what = string(d.State)
	}
	return fmt.Sprintf("%s %s%s %s — %s", d.Time.UTC().Format(time.RFC3339), d.Policy, inst, what, d.Reason)
}

func formatMap(m map[string]string) string {
	keys := sortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
