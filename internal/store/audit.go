package store

import (
	"context"
	"encoding/json"

	"github.com/remedy-run/remedy/actions"
)

var _ actions.AuditSink = (*DB)(nil)

// RecordAttempt stores one recovery attempt in the audit table.
func (db *DB) RecordAttempt(ctx context.Context, a actions.Attempt) error {
	params, _ := json.Marshal(a.Params)
	_, err := db.Exec(ctx, `INSERT INTO audit(ts, policy, instance, decision_id, action, step, attempt, params, duration_ms, outcome, error, output)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.Start.UnixMilli(), a.Policy, a.Instance, a.DecisionID, a.Action,
		a.Step, a.Attempt, string(params), a.Duration.Milliseconds(), a.Outcome, a.Error, a.Output)
	return err
}

// AuditRow is one row of the audit, for the dashboard and the CLI.
type AuditRow struct {
	ID         int64  `db:"id"`
	TS         int64  `db:"ts"`
	Policy     string `db:"policy"`
	Instance   string `db:"instance"`
	DecisionID int64  `db:"decision_id"`
	Action     string `db:"action"`
	Step       int    `db:"step"`
	Attempt    int    `db:"attempt"`
	Params     string `db:"params"`
	DurationMS int64  `db:"duration_ms"`
	Outcome    string `db:"outcome"`
	Error      string `db:"error"`
	Output     string `db:"output"`
}

// Audit returns the newest audit rows, newest first.
func (db *DB) Audit(ctx context.Context, limit int) ([]AuditRow, error) {
	var out []AuditRow
	err := db.Select(ctx, &out, `SELECT id, ts, policy, instance, decision_id, action, step, attempt, params, duration_ms,
		outcome, error, output FROM audit ORDER BY id DESC LIMIT ?`, limit)
	return out, err
}
