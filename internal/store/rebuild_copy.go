package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// copier copies tables from the damaged file (old) into the new one (fresh) for Rebuild.
type copier struct {
	db         *DB
	old, fresh *sqlx.DB
	prog       RebuildProgress
	// quarantined is the rows this rebuild moved to the quarantine table, by table, so a
	// table copied again at the swap does not quarantine them twice.
	quarantined map[string]map[int64]bool
}

// count is the table's rows in the damaged file: count(*), or when that cannot be read
// its largest rowid (an upper bound).
func (c *copier) count(ctx context.Context, t string) int {
	var n int
	if err := c.old.GetContext(ctx, &n, fmt.Sprintf(`SELECT count(*) FROM "%s"`, t)); err != nil {
		_ = c.old.GetContext(ctx, &n, fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM "%s"`, t))
	}
	return n
}

// salvage copies the rows of t after rowid `after`, reading in rowid order in chunks
// (one transaction each) and skipping ahead, by growing steps, past ranges that cannot
// be read. It returns the last rowid it read.
func (c *copier) salvage(ctx context.Context, t string, after int64, tr *TableReport) int64 {
	cols, err := columns(ctx, c.fresh, t)
	if err != nil || len(cols) == 0 {
		tr.Errors = append(tr.Errors, fmt.Sprintf("columns: %v", err))
		return after
	}
	jsonCols := map[int]bool{}
	for i, col := range cols {
		for _, jc := range c.db.opts.Schema.JSON[t] {
			if col == jc {
				jsonCols[i] = true
			}
		}
	}
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = `"` + col + `"`
	}
	sel := fmt.Sprintf(`SELECT rowid, %s FROM "%s" WHERE rowid > ? ORDER BY rowid LIMIT %d`, strings.Join(quoted, ", "), t, rebuildBatch)
	ins := fmt.Sprintf(`INSERT OR IGNORE INTO "%s" (rowid, %s) VALUES (?%s)`, t, strings.Join(quoted, ", "), strings.Repeat(", ?", len(cols)))
	if t == "quarantine" {
		// Rows this rebuild quarantines are already there under new rowids: the old
		// ones get new rowids too rather than collide with them.
		ins = fmt.Sprintf(`INSERT INTO quarantine (%s) VALUES (?%s)`, strings.Join(quoted, ", "), strings.Repeat(", ?", len(cols)-1))
	}
	var maxRow int64
	_ = c.old.GetContext(ctx, &maxRow, fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM "%s"`, t))
	c.prog.Table = t
	last, step, misses := after, int64(1), 0
	for misses < 48 && ctx.Err() == nil {
		got, lastRead, err := c.chunk(ctx, sel, ins, t, last, cols, jsonCols, tr)
		if got > 0 {
			last, step, misses = lastRead, 1, 0
			c.prog.Copied += int64(got)
			c.db.setProgress(c.prog)
			if err == nil {
				continue
			}
		}
		if err == nil {
			break // end of table
		}
		if ctx.Err() != nil {
			break
		}
		if len(tr.Errors) < 5 {
			tr.Errors = append(tr.Errors, fmt.Sprintf("after row %d: %v", last, err))
		}
		tr.Unreadable++
		last += step
		step *= 2
		misses++
		if maxRow > 0 && last > maxRow {
			break
		}
	}
	return last
}

// chunk copies up to rebuildBatch rows after rowid `after` in one transaction; it
// returns how many it read, the last rowid read, and the error that stopped the read
// (nil at a clean end).
func (c *copier) chunk(ctx context.Context, sel, ins, t string, after int64, cols []string,
	jsonCols map[int]bool, tr *TableReport) (int, int64, error) {
	rows, err := c.old.QueryContext(ctx, sel, after)
	if err != nil {
		return 0, after, err
	}
	defer rows.Close()
	tx, err := c.fresh.BeginTxx(ctx, nil)
	if err != nil {
		return 0, after, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, ins)
	if err != nil {
		return 0, after, err
	}
	defer stmt.Close()
	n, copied, last := 0, 0, after
	var readErr error
	for rows.Next() {
		vals := make([]any, len(cols)+1)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			readErr = err
			break
		}
		rowid, _ := vals[0].(int64)
		last = rowid
		n++
		bad := ""
		for i := range cols {
			if jsonCols[i] && !validJSON(vals[i+1]) {
				bad = "column " + cols[i] + ": invalid JSON"
			}
		}
		if bad != "" {
			if c.quarantined[t][rowid] {
				tr.Quarantined++
				continue
			}
			if err := quarantine(ctx, tx, t, rowid, cols, vals[1:], bad); err != nil {
				tr.Errors = append(tr.Errors, err.Error())
			} else {
				tr.Quarantined++
				if c.quarantined == nil {
					c.quarantined = map[string]map[int64]bool{}
				}
				if c.quarantined[t] == nil {
					c.quarantined[t] = map[int64]bool{}
				}
				c.quarantined[t][rowid] = true
			}
			continue
		}
		args := vals
		if t == "quarantine" {
			args = vals[1:]
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if len(tr.Errors) < 5 {
				tr.Errors = append(tr.Errors, fmt.Sprintf("row %d: %v", rowid, err))
			}
			continue
		}
		copied++
	}
	if readErr == nil {
		readErr = rows.Err()
	}
	if err := tx.Commit(); err != nil {
		return 0, after, err
	}
	tr.Copied += copied
	return n, last, readErr
}
