package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// TableReport says what happened to one table in a recovery.
type TableReport struct {
	Table       string
	Copied      int // rows copied back
	Quarantined int // rows moved to the quarantine table (unparseable JSON)
	// Unreadable counts the row ranges that could not be read (the rows in them are
	// lost from the rebuilt file, but are still in the backup).
	Unreadable int
	// Rows is how many rows the damaged table held: its count(*), or when that cannot
	// be read its largest rowid (an upper bound).
	Rows   int
	Errors []string
}

// Lost is how many rows of the table did not make it into the rebuilt file.
func (t TableReport) Lost() int { return max(t.Rows-t.Copied-t.Quarantined, 0) }

// Report is the result of a CLEAN_DATA recovery.
type Report struct {
	Backup string // where the damaged file was moved (empty if no rebuild was needed)
	Tables []TableReport
	AtOpen bool // the rebuild happened when remedy opened the file
}

// String says what the repair did, for the audit, the alert and the log: "damaged file
// moved to remedy.db.corrupt-…; 52308 of 52369 rows kept, 61 lost (they stay in the
// moved file); events: 61 lost, state: 2 quarantined". Only tables that lost or
// quarantined rows are named; a healthy file says "nothing to repair".
func (r Report) String() string {
	var parts []string
	if r.Backup != "" {
		var rows, kept, lost int
		for _, t := range r.Tables {
			rows, kept, lost = rows+t.Rows, kept+t.Copied+t.Quarantined, lost+t.Lost()
		}
		s := fmt.Sprintf("damaged file moved to %s; %d of %d rows kept, %d lost", r.Backup, kept, rows, lost)
		if lost > 0 {
			s += " (they stay in the moved file)"
		}
		if r.AtOpen {
			s = "rebuilt when remedy opened it: " + s
		}
		parts = append(parts, s)
	}
	for _, t := range r.Tables {
		var what []string
		if n := t.Lost(); n > 0 {
			what = append(what, fmt.Sprintf("%d lost", n))
		}
		if t.Quarantined > 0 {
			what = append(what, fmt.Sprintf("%d quarantined (unparseable JSON, kept in the quarantine table)", t.Quarantined))
		}
		if len(what) > 0 {
			parts = append(parts, t.Table+": "+strings.Join(what, ", "))
		}
	}
	if len(parts) == 0 {
		return "nothing to repair"
	}
	return strings.Join(parts, "; ")
}

// Clean is the CLEAN_DATA recovery for a database: if the file fails its integrity
// check it is rebuilt (Rebuild); otherwise rows with unparseable JSON are moved to the
// quarantine table (QuarantineJSON). Nothing is ever deleted outright.
//
// A rebuild done at open (Options.Repair) is reported by the first Clean after it, so
// the CLEAN_DATA that DB_CORRUPT started names the moved file and the rows lost instead
// of "nothing to repair".
func (db *DB) Clean(ctx context.Context) (Report, error) {
	if err := db.IntegrityCheck(ctx); err != nil {
		return db.Rebuild(ctx)
	}
	if rep := db.openRepair.Swap(nil); rep != nil {
		more, err := db.QuarantineJSON(ctx)
		rep.Tables = append(rep.Tables, more.Tables...)
		rep.AtOpen = true
		return *rep, err
	}
	return db.QuarantineJSON(ctx)
}

func userTables(ctx context.Context, w *sqlx.DB) ([]string, error) {
	var names []string
	err := w.SelectContext(ctx, &names, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name`)
	return names, err
}

func columns(ctx context.Context, w *sqlx.DB, table string) ([]string, error) {
	var cols []string
	rows, err := w.QueryxContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func validJSON(v any) bool {
	switch x := v.(type) {
	case string:
		return json.Valid([]byte(x))
	case []byte:
		return json.Valid(x)
	}
	return v == nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func quarantine(ctx context.Context, w execer, table string, rowid int64, cols []string, vals []any, reason string) error {
	row := map[string]any{}
	for i, c := range cols {
		switch x := vals[i].(type) {
		case []byte:
			row[c] = string(x)
		default:
			row[c] = x
		}
	}
	data, _ := json.Marshal(row)
	_, err := w.ExecContext(ctx, `INSERT INTO quarantine(ts, tbl, row_id, data, reason) VALUES (?, ?, ?, ?, ?)`,
		time.Now().UnixMilli(), table, rowid, string(data), reason)
	return err
}

// QuarantineJSON moves every row whose JSON columns no longer parse into the quarantine
// table (in one transaction per table), leaving good rows where they are.
func (db *DB) QuarantineJSON(ctx context.Context) (Report, error) {
	var rep Report
	tables := make([]string, 0, len(db.opts.Schema.JSON))
	for t := range db.opts.Schema.JSON {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		tr := TableReport{Table: t}
		var conds []string
		for _, c := range db.opts.Schema.JSON[t] {
			conds = append(conds, fmt.Sprintf(`json_valid("%s") = 0`, c))
		}
		where := strings.Join(conds, " OR ")
		err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
			tr.Quarantined = 0
			rows, err := tx.tx.QueryxContext(ctx, fmt.Sprintf(`SELECT rowid AS rowid__, * FROM "%s" WHERE %s`, t, where))
			if err != nil {
				return err
			}
			type bad struct {
				id   int64
				cols []string
				vals []any
			}
			var bads []bad
			cols, _ := rows.Columns()
			for rows.Next() {
				vals, err := rows.SliceScan()
				if err != nil {
					rows.Close()
					return err
				}
				id, _ := vals[0].(int64)
				bads = append(bads, bad{id, cols[1:], vals[1:]})
			}
			rows.Close()
			for _, b := range bads {
				if err := quarantine(ctx, tx.tx, t, b.id, b.cols, b.vals, "invalid JSON"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM "%s" WHERE rowid = ?`, t), b.id); err != nil {
					return err
				}
				tr.Quarantined++
			}
			return nil
		})
		if err != nil {
			tr.Errors = append(tr.Errors, err.Error())
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}
