// Package engine is remedy's policy state machine. It is pure: it takes time only from
// its inputs, does no I/O and starts no goroutines. The daemon, the policy tester and
// replay all drive it the same way; only what they do with its decisions differs.
package engine

import "time"

// Input is one thing that happened: an Event, a Sample or a Tick.
type Input interface {
	At() time.Time
}

// Event is an occurrence reported by a source.
type Event struct {
	Time    time.Time         `json:"time"`
	Code    string            `json:"code"`
	Source  string            `json:"source,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Message string            `json:"message,omitempty"`
	Value   float64           `json:"value,omitempty"`
}

// Sample is one reading of the metrics.
type Sample struct {
	Time   time.Time          `json:"time"`
	Values map[string]float64 `json:"values"`
}

// Tick moves time forward with no new input, so that `for`, backoff, breakers and
// repeats advance. The caller ticks at NextDeadline.
type Tick struct {
	Time time.Time `json:"time"`
}

// At returns the event's time.
func (e Event) At() time.Time { return e.Time }

// At returns the sample's time.
func (s Sample) At() time.Time { return s.Time }

// At returns the tick's time.
func (t Tick) At() time.Time { return t.Time }

// The events the executor reports; the engine matches them to the attempt it decided by
// their labels.
const (
	CodeActionSucceeded = "ACTION_SUCCEEDED"
	CodeActionFailed    = "ACTION_FAILED"
	CodeActionTimeout   = "ACTION_TIMEOUT"
)

// Labels of action result events.
const (
	LabelPolicy   = "policy"
	LabelInstance = "instance"
	LabelDecision = "decision"
	LabelAction   = "action"
	LabelStep     = "step"
	LabelAttempt  = "attempt"
	// LabelOutcome is set to OutcomeRefused on an ACTION_FAILED whose action could not
	// apply to its target and did not run: the engine counts the step used up (retrying
	// cannot help) and goes to the next one.
	LabelOutcome = "outcome"
)

// OutcomeRefused is LabelOutcome's value for an attempt refused before it ran.
const OutcomeRefused = "refused"

// NotAfter returns the input with its time moved back to now if it is later: remedy's
// clock is the engine's, and a source whose clock runs ahead (a client posting its own
// time) must not move every timer forward with it. An earlier time is kept, for the
// history windows; the engine treats it as happening at its own clock.
func NotAfter(in Input, now time.Time) Input {
	if !in.At().After(now) {
		return in
	}
	switch x := in.(type) {
	case Event:
		x.Time = now
		return x
	case *Event:
		c := *x
		c.Time = now
		return &c
	case Sample:
		x.Time = now
		return x
	case *Sample:
		c := *x
		c.Time = now
		return &c
	}
	return Tick{Time: now}
}
