package web

import (
	"context"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Backend is what the server needs from the daemon. It speaks web's own types (and the
// engine's public input and status types), never a store row or an alert pipeline
// object, so the handlers are tested against a fake and the API's JSON cannot change
// by accident when an internal package does.
//
// Methods that look something up return an error wrapping ErrNotFound when it is not
// there, ErrInvalid for a request the backend refuses, ErrBusy when the engine did not
// answer in time; any other error is answered "internal error" (500) and logged.
type Backend interface {
	Overview(ctx context.Context) Overview
	Policies(ctx context.Context) ([]engine.PolicyStatus, error)
	TryPolicy(name string, in engine.Input) (engine.TryResult, error)
	// Ingest commits inputs from the API to disk and queues them for the engine; it
	// returns once they are committed, ErrOverloaded or ErrNotStored otherwise.
	Ingest(ctx context.Context, ins []engine.Input) error
	Reload(ctx context.Context) ReloadStatus
	History(ctx context.Context, since time.Time) ([]engine.Sample, error)
	Records
	Alerting
}

// Records reads remedy's history, newest first, at most limit rows.
type Records interface {
	Events(ctx context.Context, limit int) ([]engine.Event, error)
	Decisions(ctx context.Context, policy string, limit int) ([]DecisionRecord, error)
	Actions(ctx context.Context, limit int) ([]ActionRecord, error)
	// DeadLetters lists a queue's dead letters ("" for every queue), oldest first; with
	// pending only those not replayed yet.
	DeadLetters(ctx context.Context, queue string, pending bool) ([]DeadLetter, error)
	// Report is the newest daily report (ErrNotFound before the first).
	Report(ctx context.Context) (Report, error)
}

// Alerting is the alert pipeline as the API uses it.
type Alerting interface {
	Alerts(ctx context.Context, limit int) ([]Alert, error)
	Outbox(ctx context.Context) ([]OutboxEntry, error)
	Ack(ctx context.Context, id int64, by string) error // ErrNotFound (also: the incident is not open)
	Unack(ctx context.Context, id int64) error          // ErrNotFound (no ack on the alert's incident)
	Silences(ctx context.Context) ([]Silence, error)
	Silence(ctx context.Context, s Silence) (Silence, error) // ErrInvalid
	Expire(ctx context.Context, id int64) error              // ErrNotFound
}

// Alert is one alert notification as stored: times in Unix milliseconds.
type Alert struct {
	ID          int64  `json:"id"`
	Fingerprint string `json:"fingerprint"`
	TS          int64  `json:"ts"`
	Policy      string `json:"policy"`
	Instance    string `json:"instance"`
	Severity    string `json:"severity"`
	State       string `json:"state"`
	Summary     string `json:"summary"`
	Suppressed  int    `json:"suppressed"`
	Held        string `json:"held"` // silenced, inhibited, acked: why it was not sent
	AckedBy     string `json:"acked_by"`
	AckedAt     int64  `json:"acked_at"`
	Reason      string `json:"reason"`
	// Ackable says whether POST alerts/{id}/ack can work: the row's incident is still
	// open (not resolved since). A resolved row, or a row of an incident that resolved
	// later, is not.
	Ackable bool `json:"ackable"`
	// Labels are the alert's labels (its instance's group_by labels, "session" among
	// them for a WhatsApp policy, and its policy's own); the dashboard filters by them.
	Labels map[string]string `json:"labels,omitempty"`
}

// DecisionRecord is one recorded engine decision (time in Unix milliseconds).
type DecisionRecord struct {
	DecisionID int64  `json:"id"`
	TS         int64  `json:"ts"`
	Kind       string `json:"kind"`
	Policy     string `json:"policy"`
	Instance   string `json:"instance"`
	State      string `json:"state"`
	Severity   string `json:"severity"`
	Reason     string `json:"reason"`
}

// ActionRecord is one row of the recovery actions' audit (times in Unix milliseconds).
type ActionRecord struct {
	ID         int64  `json:"id"`
	TS         int64  `json:"ts"`
	Policy     string `json:"policy"`
	Instance   string `json:"instance"`
	DecisionID int64  `json:"decision_id"`
	Action     string `json:"action"`
	Step       int    `json:"step"`
	Attempt    int    `json:"attempt"`
	Params     string `json:"params"`
	DurationMS int64  `json:"duration_ms"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error"`
	Output     string `json:"output"`
}

// DeadLetter is an item taken out of its queue (times in Unix milliseconds; Replayed is
// 0 until `remedy deadletter replay` puts it back). Its JSON names are the Go names, as
// the API has always answered them.
type DeadLetter struct {
	ID       int64
	Queue    string
	ItemID   int64
	Payload  string
	Reason   string
	Attempts int
	Enqueued int64
	DeadAt   int64
	Replayed int64
}

// OutboxEntry is an alert waiting for a channel (times in Unix milliseconds).
type OutboxEntry struct {
	ID          int64  `json:"id"`
	AlertID     int64  `json:"alert_id"`
	Channel     string `json:"channel"`
	Attempts    int    `json:"attempts"`
	NextAttempt int64  `json:"next_attempt"`
	LastError   string `json:"last_error"`
	Created     int64  `json:"created"`
}

// Silence holds the alerts whose labels match Matchers ("policy", "instance",
// "severity" or a label; a trailing * globs) from Starts to Ends.
type Silence struct {
	ID       int64             `json:"id"`
	Matchers map[string]string `json:"matchers"`
	Starts   time.Time         `json:"starts"`
	Ends     time.Time         `json:"ends"`
	Author   string            `json:"author"`
	Reason   string            `json:"reason"`
}

// Report is a daily report.
type Report struct {
	Time time.Time `json:"time"`
	Body string    `json:"report"`
}
