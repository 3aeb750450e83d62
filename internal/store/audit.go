package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// AuditEntry is one row of the actions audit: a recovery attempt, a reload, a refused
// admin command, a handler panic. Params is stored as JSON ("{}" when empty).
type AuditEntry struct {
	Time       time.Time
	Policy     string
	Instance   string
	DecisionID uint64
	Action     string
	Step       int
	Attempt    int
	Params     map[string]string
	Duration   time.Duration
	Outcome    string
	Error      string
	Output     string
}

const insertAudit = `INSERT INTO audit(ts, policy, instance, decision_id, action, step, attempt, params, duration_ms, outcome, error, output)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (e AuditEntry) args() []any {
	params := "{}"
	if len(e.Params) > 0 {
		b, _ := json.Marshal(e.Params)
		params = string(b)
	}
	return []any{e.Time.UnixMilli(), e.Policy, e.Instance, e.DecisionID, e.Action, e.Step, e.Attempt, params,
		e.Duration.Milliseconds(), e.Outcome, e.Error, e.Output}
}

// InsertAudit stores audit rows in one transaction. The daemon's audit writer is its one
// caller at run time (the table's owner); ResetState writes its before-images inside its
// own transaction through the same statement.
func (db *DB) InsertAudit(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		for _, e := range entries {
			if _, err := tx.Exec(ctx, insertAudit, e.args()...); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditRow is one row of the audit, for the dashboard and the CLI.
type AuditRow struct {
	ID         int64  `db:"id" json:"id"`
	TS         int64  `db:"ts" json:"ts"`
	Policy     string `db:"policy" json:"policy"`
	Instance   string `db:"instance" json:"instance"`
	DecisionID int64  `db:"decision_id" json:"decision_id"`
	Action     string `db:"action" json:"action"`
	Step       int    `db:"step" json:"step"`
	Attempt    int    `db:"attempt" json:"attempt"`
	Params     string `db:"params" json:"params"`
	DurationMS int64  `db:"duration_ms" json:"duration_ms"`
	Outcome    string `db:"outcome" json:"outcome"`
	Error      string `db:"error" json:"error"`
	Output     string `db:"output" json:"output"`
}

// Audit returns the newest audit rows, newest first.
func (db *DB) Audit(ctx context.Context, limit int) ([]AuditRow, error) {
	var out []AuditRow
	err := db.Select(ctx, &out, `SELECT id, ts, policy, instance, decision_id, action, step, attempt, params, duration_ms,
		outcome, error, output FROM audit ORDER BY id DESC LIMIT ?`, limit)
	return out, err
}

// AlertRow is one alert as stored, for the dashboard.
type AlertRow struct {
	ID          int64  `db:"id" json:"id"`
	Fingerprint string `db:"fingerprint" json:"fingerprint"`
	TS          int64  `db:"ts" json:"ts"`
	Policy      string `db:"policy" json:"policy"`
	Instance    string `db:"instance" json:"instance"`
	Severity    string `db:"severity" json:"severity"`
	State       string `db:"state" json:"state"`
	Summary     string `db:"summary" json:"summary"`
	Suppressed  int    `db:"suppressed" json:"suppressed"`
	Held        string `db:"held" json:"held"`
	AckedBy     string `db:"acked_by" json:"acked_by"`
	AckedAt     int64  `db:"acked_at" json:"acked_at"`
	Reason      string `db:"reason" json:"reason"`
	// Labels is the alert's labels as stored (a JSON object); the API answers them
	// decoded (web.Alert.Labels), so this row's JSON leaves them out.
	Labels string `db:"labels" json:"-"`
}

// Alerts returns the newest alerts, newest first.
func (db *DB) Alerts(ctx context.Context, limit int) ([]AlertRow, error) {
	var out []AlertRow
	err := db.Select(ctx, &out, `SELECT id, fingerprint, ts, policy, instance, severity, state, summary, suppressed, held,
		acked_by, acked_at, reason, labels FROM alerts ORDER BY id DESC LIMIT ?`, limit)
	return out, err
}

// RecentEvents returns the newest events, newest first.
func (db *DB) RecentEvents(ctx context.Context, limit int) ([]engine.Event, error) {
	var rows []struct {
		TS      int64   `db:"ts"`
		Code    string  `db:"code"`
		Source  string  `db:"source"`
		Labels  string  `db:"labels"`
		Message string  `db:"message"`
		Value   float64 `db:"value"`
	}
	if err := db.Select(ctx, &rows, `SELECT ts, code, source, labels, message, value FROM events ORDER BY id DESC LIMIT ?`, limit); err != nil {
		return nil, err
	}
	out := make([]engine.Event, len(rows))
	for i, r := range rows {
		out[i] = engine.Event{Time: time.UnixMilli(r.TS).UTC(), Code: r.Code, Source: r.Source, Message: r.Message, Value: r.Value}
		if r.Labels != "{}" {
			_ = json.Unmarshal([]byte(r.Labels), &out[i].Labels)
		}
	}
	return out, nil
}

// DecisionRow is one recorded decision.
type DecisionRow struct {
	DecisionID int64  `db:"decision_id" json:"id"`
	TS         int64  `db:"ts" json:"ts"`
	Kind       string `db:"kind" json:"kind"`
	Policy     string `db:"policy" json:"policy"`
	Instance   string `db:"instance" json:"instance"`
	State      string `db:"state" json:"state"`
	Severity   string `db:"severity" json:"severity"`
	Reason     string `db:"reason" json:"reason"`
}

// Decisions returns the newest decisions of a policy ("" for all), newest first.
func (db *DB) Decisions(ctx context.Context, policy string, limit int) ([]DecisionRow, error) {
	var out []DecisionRow
	err := db.Select(ctx, &out, `SELECT decision_id, ts, kind, policy, instance, state, severity, reason FROM decisions
		WHERE ? = '' OR policy = ? ORDER BY id DESC LIMIT ?`, policy, policy, limit)
	return out, err
}
