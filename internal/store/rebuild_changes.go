package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// A rebuild's swap holds every writer while it brings the copy up to date, so that work
// must not grow with the file. History tables are append-only (caught up by rowid); the
// tables updated in place (outgoing, alerts, queue_items, …) are followed by temporary
// triggers on the writer connection, the only one that writes: each insert, update or
// delete records the rowid it touched in a temporary table, and the swap copies only
// those rows again. TEMP triggers and tables live in the connection, never in the
// damaged file. If the connection was replaced meanwhile (RESET_DB), the log is gone and
// the swap copies those tables whole, as before.

// changeLog is the temporary table the triggers write to.
const changeLog = "remedy_rebuild_changed"

// followChanges installs the triggers on the writer connection for tables (the ones
// not in historyTables). An error (no connection: a file that could not be opened,
// rebuilt at Open, where nothing else writes) leaves the swap to copy them whole.
func (db *DB) followChanges(ctx context.Context, tables []string) error {
	stmts := []string{
		`CREATE TEMP TABLE IF NOT EXISTS ` + changeLog + `(tbl TEXT NOT NULL, rid INTEGER NOT NULL)`,
		`DELETE FROM temp.` + changeLog,
	}
	for _, t := range tables {
		if isHistory(t) {
			continue
		}
		for _, op := range []struct{ name, event, rows string }{
			{"i", "INSERT", fmt.Sprintf(`('%s', NEW.rowid)`, t)},
			{"u", "UPDATE", fmt.Sprintf(`('%s', OLD.rowid), ('%s', NEW.rowid)`, t, t)},
			{"d", "DELETE", fmt.Sprintf(`('%s', OLD.rowid)`, t)},
		} {
			stmts = append(stmts, fmt.Sprintf(`CREATE TEMP TRIGGER IF NOT EXISTS "remedy_rebuild_%s_%s" AFTER %s ON "%s" BEGIN INSERT INTO %s VALUES %s; END`,
				op.name, t, op.event, t, changeLog, op.rows))
		}
	}
	// On the connection itself, not through Exec: nothing here writes the file (no retry,
	// and no write's success to clear the database's full state).
	err := db.with(func(h *handles) error {
		for _, q := range stmts {
			if _, err := h.w.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.unfollowChanges(tables)
	}
	return err
}

// unfollowChanges drops the triggers and the log (a rebuild that stopped before its swap
// would otherwise leave them logging every write until the connection closes).
// Once, without retries: with the connection closed (swapped, or stopped mid-swap) the
// temporary objects are gone with it.
func (db *DB) unfollowChanges(tables []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = db.with(func(h *handles) error {
		for _, t := range tables {
			for _, op := range []string{"i", "u", "d"} {
				_, _ = h.w.ExecContext(ctx, fmt.Sprintf(`DROP TRIGGER IF EXISTS temp."remedy_rebuild_%s_%s"`, op, t))
			}
		}
		_, _ = h.w.ExecContext(ctx, `DROP TABLE IF EXISTS temp.`+changeLog)
		return nil
	})
}

// changedRows reads the log on the writer connection (db.mu held by the swap): the rowids
// touched per table. ok is false when the log is not there (the connection was replaced).
func (db *DB) changedRows(ctx context.Context) (map[string][]int64, bool) {
	if db.h == nil {
		return nil, false
	}
	var rows []struct {
		Tbl string `db:"tbl"`
		Rid int64  `db:"rid"`
	}
	if err := db.h.w.SelectContext(ctx, &rows, `SELECT tbl, rid FROM temp.`+changeLog+` GROUP BY tbl, rid ORDER BY tbl, rid`); err != nil {
		return nil, false
	}
	out := map[string][]int64{}
	for _, r := range rows {
		out[r.Tbl] = append(out[r.Tbl], r.Rid)
	}
	return out, true
}

// recopyRows brings table t of the copy up to date for the rowids changed: all of them
// are deleted from the copy first (a unique key may have moved from one row to another),
// then each is copied again from the damaged file if it is still there, replacing any
// row of the copy it conflicts with (the damaged file has no such row any more).
func (c *copier) recopyRows(ctx context.Context, t string, rids []int64, tr *TableReport) error {
	tc, err := c.tableCopy(ctx, t)
	if err != nil {
		return err
	}
	tc.fast = strings.Replace(tc.fast, "INSERT OR IGNORE", "INSERT OR REPLACE", 1)
	tc.ins = strings.Replace(tc.ins, "INSERT OR IGNORE", "INSERT OR REPLACE", 1)
	del := fmt.Sprintf(`DELETE FROM main."%s" WHERE rowid = ?`, t)
	for _, rid := range rids {
		if _, err := c.fresh.ExecContext(ctx, del, rid); err != nil {
			return err
		}
	}
	for _, rid := range rids {
		if _, ok := c.fastRange(ctx, tc, rid-1, rid); !ok {
			c.careful(ctx, tc, rid-1, rid, tr)
		}
	}
	return nil
}
