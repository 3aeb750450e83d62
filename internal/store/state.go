package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// StateKinds maps RESET_STATE's scope to the kinds of rows in the state table.
var StateKinds = map[string][]string{
	"sessions":      {"session"},
	"conversations": {"conversation"},
	"all":           nil, // every kind
}

// ResetState resets bot state rows of the scope that have not been updated within ttl
// to their initial value ('{}'), after saving each row's before-image in the audit, so
// that a reset can be inspected or undone. It is the RESET_STATE recovery for stored
// state and returns how many rows it reset.
func (db *DB) ResetState(ctx context.Context, scope string, ttl time.Duration) (int, error) {
	kinds, ok := StateKinds[scope]
	if !ok {
		return 0, fmt.Errorf("reset state: unknown scope %q", scope)
	}
	now := time.Now()
	cut := now.Add(-ttl).UnixMilli()
	n := 0
	err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		n = 0
		var rows []struct {
			Key     string `db:"key"`
			Kind    string `db:"kind"`
			Data    string `db:"data"`
			Updated int64  `db:"updated"`
		}
		if err := tx.Select(ctx, &rows, `SELECT key, kind, data, updated FROM state WHERE updated < ? AND data != '{}' ORDER BY key`, cut); err != nil {
			return err
		}
		for _, r := range rows {
			if kinds != nil && !contains(kinds, r.Kind) {
				continue
			}
			before, _ := json.Marshal(map[string]any{"key": r.Key, "kind": r.Kind, "data": json.RawMessage(validOr(r.Data)),
				"updated": time.UnixMilli(r.Updated).UTC()})
			e := AuditEntry{Time: now, Instance: r.Key, Action: "RESET_STATE", Outcome: "reset", Output: string(before),
				Params: map[string]string{"scope": scope, "ttl": ttl.String(), "key": r.Key}}
			if _, err := tx.Exec(ctx, insertAudit, e.args()...); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE state SET data = '{}', updated = ? WHERE key = ?`, now.UnixMilli(), r.Key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// validOr keeps a before-image readable even when the row's JSON is broken.
func validOr(s string) string {
	if json.Valid([]byte(s)) {
		return s
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
