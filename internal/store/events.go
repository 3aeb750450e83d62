package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/remedy-run/remedy/engine"
)

const insertEvent = `INSERT INTO events(ts, code, source, labels, message, value) VALUES (?, ?, ?, ?, ?, ?)`

func eventArgs(ev engine.Event) []any {
	labels := "{}"
	if len(ev.Labels) > 0 {
		b, _ := json.Marshal(ev.Labels)
		labels = string(b)
	}
	return []any{ev.Time.UnixMilli(), ev.Code, ev.Source, labels, ev.Message, ev.Value}
}

// InsertEvents records events (the engine's input history) in one transaction.
func (db *DB) InsertEvents(ctx context.Context, evs []engine.Event) error {
	if len(evs) == 1 {
		return db.InsertEvent(ctx, evs[0])
	}
	return db.InsertJournal(ctx, evs, nil)
}

// InsertEvent records one event (one statement, committed on its own).
func (db *DB) InsertEvent(ctx context.Context, ev engine.Event) error {
	_, err := db.Exec(ctx, insertEvent, eventArgs(ev)...)
	return err
}

// Events returns the recorded events in [since, until), oldest first.
func (db *DB) Events(ctx context.Context, since, until time.Time) ([]engine.Event, error) {
	var rows []struct {
		TS      int64   `db:"ts"`
		Code    string  `db:"code"`
		Source  string  `db:"source"`
		Labels  string  `db:"labels"`
		Message string  `db:"message"`
		Value   float64 `db:"value"`
	}
	if err := db.Select(ctx, &rows, `SELECT ts, code, source, labels, message, value FROM events
		WHERE ts >= ? AND ts < ? ORDER BY ts, id`, since.UnixMilli(), until.UnixMilli()); err != nil {
		return nil, err
	}
	out := make([]engine.Event, len(rows))
	for i, r := range rows {
		out[i] = engine.Event{Time: time.UnixMilli(r.TS).UTC(), Code: r.Code, Source: r.Source, Message: r.Message, Value: r.Value}
		if r.Labels != "{}" && r.Labels != "" {
			_ = json.Unmarshal([]byte(r.Labels), &out[i].Labels)
		}
	}
	return out, nil
}

// InsertDecisions records engine decisions for the timeline and the audit.
func (db *DB) InsertDecisions(ctx context.Context, ds []engine.Decision) error {
	return db.InsertJournal(ctx, nil, ds)
}

// InsertJournal records events and decisions in one transaction (the daemon's journal
// writer, owner of both tables).
func (db *DB) InsertJournal(ctx context.Context, evs []engine.Event, ds []engine.Decision) error {
	if len(evs) == 0 && len(ds) == 0 {
		return nil
	}
	return db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		if len(evs) > 0 {
			st, err := tx.Prepare(ctx, insertEvent)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, ev := range evs {
				if _, err := st.ExecContext(ctx, eventArgs(ev)...); err != nil {
					return err
				}
			}
		}
		if len(ds) == 0 {
			return nil
		}
		st, err := tx.Prepare(ctx, `INSERT INTO decisions(decision_id, ts, kind, policy, instance, state, severity, reason, payload)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, d := range ds {
			payload := map[string]any{"labels": d.Labels}
			if d.Action != nil {
				payload["action"] = d.Action
			}
			if d.Alert != nil {
				payload["alert"] = d.Alert
			}
			b, _ := json.Marshal(payload)
			if _, err := st.ExecContext(ctx, d.ID, d.Time.UnixMilli(), string(d.Kind), d.Policy, d.Instance,
				string(d.State), string(d.Severity), d.Reason.String(), string(b)); err != nil {
				return err
			}
		}
		return nil
	})
}
