package store

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/jmoiron/sqlx"
)

// copier copies tables from the damaged file (old) into the new one (fresh) for Rebuild.
type copier struct {
	db         *DB
	old, fresh *sqlx.DB
	prog       RebuildProgress
	attached   bool // the damaged file is attached to fresh as "src" (the fast path)
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

// tableCopy is one table's statements for a copy.
type tableCopy struct {
	t        string
	cols     []string
	jsonCols map[int]bool
	sel, ins string // the careful path: read in Go, row by row
	// fast copies a rowid range inside SQLite (INSERT … SELECT from the attached damaged
	// file) when every row in it reads and its JSON parses; badJSON counts the rows in a
	// range whose JSON does not ("" when the table has no JSON columns).
	fast, badJSON string
}

func (c *copier) tableCopy(ctx context.Context, t string) (*tableCopy, error) {
	cols, err := columns(ctx, c.fresh, t)
	if err != nil || len(cols) == 0 {
		return nil, fmt.Errorf("columns: %v", err)
	}
	tc := &tableCopy{t: t, cols: cols, jsonCols: map[int]bool{}}
	var valid []string
	for i, col := range cols {
		for _, jc := range c.db.opts.Schema.JSON[t] {
			if col == jc {
				tc.jsonCols[i] = true
				valid = append(valid, fmt.Sprintf(`("%s" IS NULL OR json_valid("%s"))`, col, col))
			}
		}
	}
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = `"` + col + `"`
	}
	list := strings.Join(quoted, ", ")
	tc.sel = fmt.Sprintf(`SELECT rowid, %s FROM "%s" WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT %d`, list, t, c.db.opts.batch())
	tc.ins = fmt.Sprintf(`INSERT OR IGNORE INTO "%s" (rowid, %s) VALUES (?%s)`, t, list, strings.Repeat(", ?", len(cols)))
	if t == "quarantine" {
		// Rows this rebuild quarantines are already there under new rowids: the old
		// ones get new rowids too rather than collide with them.
		tc.ins = fmt.Sprintf(`INSERT INTO quarantine (%s) VALUES (?%s)`, list, strings.Repeat(", ?", len(cols)-1))
		return tc, nil
	}
	cond := "1"
	if len(valid) > 0 {
		cond = strings.Join(valid, " AND ")
		tc.badJSON = fmt.Sprintf(`SELECT count(*) FROM src."%s" WHERE rowid > ? AND rowid <= ? AND NOT (%s)`, t, cond)
	}
	tc.fast = fmt.Sprintf(`INSERT OR IGNORE INTO main."%s" (rowid, %s) SELECT rowid, %s FROM src."%s" WHERE rowid > ? AND rowid <= ? AND %s`,
		t, list, list, t, cond)
	return tc, nil
}

// salvage copies the rows of t after rowid `after`: range by range inside SQLite while
// the ranges read cleanly, and otherwise in Go (careful), which quarantines rows whose
// JSON no longer parses and skips past ranges that cannot be read. It returns the last
// rowid it got to.
func (c *copier) salvage(ctx context.Context, t string, after int64, tr *TableReport) int64 {
	tc, err := c.tableCopy(ctx, t)
	if err != nil {
		tr.Errors = append(tr.Errors, err.Error())
		return after
	}
	var maxRow int64
	_ = c.old.GetContext(ctx, &maxRow, fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM "%s"`, t))
	c.prog.Table = t
	last := after
	for c.attached && tc.fast != "" && last < maxRow && ctx.Err() == nil {
		hi := min(last+c.db.opts.batch(), maxRow)
		n, ok := c.fastRange(ctx, tc, last, hi)
		tr.Copied += int(n)
		c.prog.Copied += n
		if !ok {
			c.careful(ctx, tc, last, hi, tr)
		}
		c.db.setProgress(c.prog)
		last = hi
	}
	// The rest (all of it without the fast path; rows past maxRow when it could not be
	// read, or were added since) the careful way.
	return max(last, c.careful(ctx, tc, last, math.MaxInt64, tr))
}

// fastRange copies the rows of (lo, hi] inside SQLite; ok is false when some could not be
// copied that way (a read error, or JSON that no longer parses): the caller then goes
// over the range carefully (rows already copied are ignored there).
func (c *copier) fastRange(ctx context.Context, tc *tableCopy, lo, hi int64) (int64, bool) {
	res, err := c.fresh.ExecContext(ctx, tc.fast, lo, hi)
	if err != nil {
		return 0, false
	}
	n, _ := res.RowsAffected()
	if tc.badJSON != "" {
		var bad int
		if err := c.fresh.GetContext(ctx, &bad, tc.badJSON, lo, hi); err != nil || bad > 0 {
			return n, false
		}
	}
	return n, true
}

// careful copies the rows of (after, hi] in Go, chunk by chunk (one transaction each),
// skipping ahead by growing steps past ranges that cannot be read. It returns the last
// rowid it got to.
func (c *copier) careful(ctx context.Context, tc *tableCopy, after, hi int64, tr *TableReport) int64 {
	var maxRow int64
	_ = c.old.GetContext(ctx, &maxRow, fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM "%s"`, tc.t))
	last, step, misses := after, int64(1), 0
	for misses < 48 && ctx.Err() == nil && last < hi {
		got, lastRead, err := c.chunk(ctx, tc, last, hi, tr)
		if got > 0 {
			last, step, misses = lastRead, 1, 0
			c.db.setProgress(c.prog)
			if err == nil {
				continue
			}
		}
		if err == nil {
			break // end of the range
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

// chunk copies up to a batch of rows after rowid `after` in one transaction; it
// returns how many it read, the last rowid read, and the error that stopped the read
// (nil at a clean end).
func (c *copier) chunk(ctx context.Context, tc *tableCopy, after, hi int64, tr *TableReport) (int, int64, error) {
	t, cols, jsonCols := tc.t, tc.cols, tc.jsonCols
	rows, err := c.old.QueryContext(ctx, tc.sel, after, hi)
	if err != nil {
		return 0, after, err
	}
	defer rows.Close()
	tx, err := c.fresh.BeginTxx(ctx, nil)
	if err != nil {
		return 0, after, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, tc.ins)
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
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			if len(tr.Errors) < 5 {
				tr.Errors = append(tr.Errors, fmt.Sprintf("row %d: %v", rowid, err))
			}
			continue
		}
		if n, _ := res.RowsAffected(); n > 0 { // 0: the fast path copied it already
			copied++
		}
	}
	if readErr == nil {
		readErr = rows.Err()
	}
	if err := tx.Commit(); err != nil {
		return 0, after, err
	}
	tr.Copied += copied
	c.prog.Copied += int64(copied)
	return n, last, readErr
}
