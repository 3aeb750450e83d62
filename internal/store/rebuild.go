package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
)

// A rebuild never serves a partial file. It copies the readable rows of the damaged
// file into PATH.rebuild while the damaged file stays in use at PATH; only when the copy
// is complete and synced does it write the marker PATH.rebuild-done (naming where the
// damaged file goes), rename PATH to PATH.corrupt-TIME and PATH.rebuild to PATH, and
// remove the marker. Open finishes a swap whose marker it finds and deletes a
// PATH.rebuild without one (an interrupted copy starts over): at every instant the file
// at PATH is the old one or a complete copy.
const (
	rebuildSuffix = ".rebuild"
	doneSuffix    = ".rebuild-done"
)

// rebuildRun is one running Rebuild; callers that ask for a rebuild meanwhile wait for
// it and share its result.
type rebuildRun struct {
	done chan struct{}
	rep  Report
	err  error
}

// criticalTables are copied first, in this order: the small tables a restart needs to
// carry on (bot state, engine state, the durable queues, sent messages and their
// idempotency keys, silences, alerts in flight). Tables not named here or in
// historyTables come next, alphabetically.
var criticalTables = []string{"state", "engine_state", "queue_items", "outgoing", "silences", "acks",
	"alert_outbox", "alerts", "dead_letters"}

// historyTables are the large, append-only tables, copied last (smallest first). Rows
// added to them while the rebuild runs are caught up by rowid at the swap; every other
// table is copied again whole at the swap, so updates and deletes made meanwhile are
// kept too.
var historyTables = []string{"reports", "quarantine", "audit", "decisions", "events"}

// rebuildBatch is the rows copied per transaction: one commit per row managed about
// 5,000 rows/s (field case C7), batches about 300,000 (TESTING-FACTS.md).
const rebuildBatch = 4096

// RebuildProgress says how far a rebuild is, for the log, systemd's STATUS= and the
// dashboard. Rows and Copied count rows of every table (Rows as the damaged file's
// count(*), read at the start: an estimate when some of it is unreadable).
type RebuildProgress struct {
	Started time.Time
	Table   string // the table being copied
	Rows    int64
	Copied  int64
	Done    bool // the copy is complete and swapped in
}

// String is "events: 1234567 of 10120000 rows (12%)".
func (p RebuildProgress) String() string {
	pct := int64(100)
	if p.Rows > 0 {
		pct = min(100*p.Copied/p.Rows, 100)
	}
	return fmt.Sprintf("%s: %d of %d rows (%d%%)", p.Table, p.Copied, p.Rows, pct)
}

// Rebuilding returns the running rebuild's progress, and false when none runs.
func (db *DB) Rebuilding() (RebuildProgress, bool) {
	if p := db.progress.Load(); p != nil {
		return *p, true
	}
	return RebuildProgress{}, false
}

func (db *DB) setProgress(p RebuildProgress) {
	db.progress.Store(&p)
	if db.opts.Progress != nil {
		db.opts.Progress(p)
	}
}

// Rebuild copies every row it can read from the damaged file into a new file and swaps
// it in at PATH; the damaged file (with its WAL) is kept as PATH.corrupt-TIME. Rows whose
// JSON columns no longer parse go to the quarantine table; rows that cannot be read are
// counted in the report (Lost). Tables go in order of need (criticalTables, the rest,
// historyTables), in batched transactions.
//
// Readers and writers keep using the damaged file during the copy; they wait only
// during the swap, which copies again the small tables and the history tables' new rows.
// When ctx ends first, nothing is swapped: PATH is still the damaged file, and the
// next Rebuild (or the next Open) starts over. A Rebuild asked for while one runs (the
// health check keeps finding the damaged file) waits for it and returns its result.
// Errors: ctx's error; an I/O error writing the new file.
func (db *DB) Rebuild(ctx context.Context) (Report, error) {
	db.rebuildMu.Lock()
	if r := db.rebuild; r != nil {
		db.rebuildMu.Unlock()
		select {
		case <-r.done:
			return r.rep, r.err
		case <-ctx.Done():
			return Report{}, fmt.Errorf("rebuild %s: waiting for the running rebuild: %w", db.opts.Name, ctx.Err())
		}
	}
	r := &rebuildRun{done: make(chan struct{})}
	db.rebuild = r
	db.rebuildMu.Unlock()
	r.rep, r.err = db.rebuildOnce(ctx)
	db.progress.Store(nil)
	db.rebuildMu.Lock()
	db.rebuild = nil
	db.rebuildMu.Unlock()
	close(r.done)
	return r.rep, r.err
}

func (db *DB) rebuildOnce(ctx context.Context) (Report, error) {
	rep := Report{Backup: db.opts.Path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")}
	tmp := db.opts.Path + rebuildSuffix
	removeFile(tmp)
	fresh, err := db.openFresh(ctx, tmp)
	if err != nil {
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	defer func() {
		if fresh != nil {
			fresh.Close()
			removeFile(tmp)
		}
	}()
	// A connection of its own on the damaged file: the pool keeps serving.
	old, err := sqlx.Open("sqlite", FileURI(db.opts.Path)+"?_pragma=busy_timeout(1000)&_pragma=query_only(1)")
	if err != nil {
		return rep, err
	}
	defer old.Close()
	old.SetMaxOpenConns(1)
	tables, err := rebuildOrder(ctx, fresh)
	if err != nil {
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	// Rows of the tables updated in place that change from now on are logged, so the swap
	// copies only those again (rebuild_changes.go).
	following := db.followChanges(ctx, tables) == nil
	if following {
		defer db.unfollowChanges(tables) // registered before the swap's lock: runs after its unlock
	}
	c := &copier{db: db, old: old, fresh: fresh, prog: RebuildProgress{Started: time.Now()}}
	// Ranges that read cleanly are copied inside SQLite, without a round trip per row.
	_, err = fresh.ExecContext(ctx, `ATTACH DATABASE ? AS src`, FileURI(db.opts.Path)+"?mode=ro")
	c.attached = err == nil
	reports := make([]TableReport, len(tables))
	last := make([]int64, len(tables))
	for i, t := range tables {
		reports[i].Table = t
		reports[i].Rows = c.count(ctx, t)
		c.prog.Rows += int64(reports[i].Rows)
	}
	for i, t := range tables {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("rebuild %s: stopped before %s: %w", db.opts.Name, t, err)
		}
		last[i] = c.salvage(ctx, t, 0, &reports[i])
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	// The swap: writers and readers wait while the copy catches up and the files move.
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.h != nil {
		_, _ = db.h.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	changed, logged := db.changedRows(ctx)
	logged = logged && following
	var recopied int64
	for i, t := range tables {
		if isHistory(t) {
			c.salvage(ctx, t, last[i], &reports[i])
			continue
		}
		if logged {
			// Only the rows changed since the copy began.
			before, prog := reports[i].Copied, c.prog.Copied
			if err := c.recopyRows(ctx, t, changed[t], &reports[i]); err != nil {
				return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
			}
			var n int
			_ = fresh.GetContext(ctx, &n, fmt.Sprintf(`SELECT count(*) FROM main."%s"`, t))
			reports[i].Rows, reports[i].Copied = c.count(ctx, t), n
			c.prog.Copied = prog - int64(before) + int64(n)
			recopied += int64(len(changed[t]))
			continue
		}
		// Updated in place and not followed: copied again whole, as it is now (its first
		// copy leaves the progress, so no row counts twice).
		if _, err := fresh.ExecContext(ctx, fmt.Sprintf(`DELETE FROM "%s"`, t)); err != nil {
			return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
		}
		c.prog.Copied -= int64(reports[i].Copied)
		reports[i] = TableReport{Table: t, Rows: c.count(ctx, t)}
		c.salvage(ctx, t, 0, &reports[i])
		recopied += int64(reports[i].Copied)
	}
	if db.opts.swapCopied != nil {
		db.opts.swapCopied(recopied)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	err = fresh.Close()
	fresh = nil
	if err == nil {
		err = syncFile(tmp)
	}
	if err != nil {
		removeFile(tmp)
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	if db.h != nil {
		_ = db.h.close()
		db.h = nil
	}
	old.Close()
	if err := db.swap(tmp, rep.Backup); err != nil {
		return rep, fmt.Errorf("rebuild %s: swap: %w", db.opts.Name, err)
	}
	h, err := db.openHandles(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild %s: %w", db.opts.Name, err)
	}
	db.h = h
	db.reopens.Add(1)
	rep.Tables = reports
	// Rows in the swapped file (the progress counted twice the tables copied again at the swap).
	c.prog.Copied = 0
	for _, tr := range reports {
		c.prog.Copied += int64(tr.Copied + tr.Quarantined)
	}
	c.prog.Done = true
	db.setProgress(c.prog)
	// Rows that could not be copied are an alert of their own: the report is otherwise
	// only in CLEAN_DATA's audit row, and DB_OK resolves db-corrupt.
	lost := 0
	for _, tr := range reports {
		lost += tr.Lost()
	}
	if lost > 0 {
		db.emitValue("DB_ROWS_LOST", rep.String(), float64(lost))
	}
	// The next health check confirms the repair and reports DB_OK.
	return rep, nil
}

// openFresh creates the new file with the schema and the Options' CreatePragmas (auto_vacuum
// is fixed when the first table is made: a copy without it would keep retention's freed
// pages from the disk). It is written without a journal and without syncs: an
// interrupted copy is thrown away, and the whole file is synced once before the swap.
func (db *DB) openFresh(ctx context.Context, path string) (*sqlx.DB, error) {
	dsn := FileURI(path) + "?_pragma=journal_mode(MEMORY)&_pragma=synchronous(OFF)&_pragma=foreign_keys(0)"
	for _, p := range db.opts.CreatePragmas { // a new file: set before its first table
		dsn += "&_pragma=" + p
	}
	w, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if err := migrate(ctx, w, db.opts.Schema); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// swap moves the complete copy in; the marker makes it finish after a crash (finishSwap).
func (db *DB) swap(tmp, backup string) error {
	if err := writeSynced(db.opts.Path+doneSuffix, []byte(backup+"\n")); err != nil {
		return err
	}
	if db.opts.crashPoint != nil {
		if err := db.opts.crashPoint(); err != nil {
			return err
		}
	}
	return finishSwap(db.opts.Path)
}

// finishSwap completes a swap whose marker is at PATH.rebuild-done, or, without a marker,
// deletes an interrupted copy at PATH.rebuild. Open runs it first.
func finishSwap(path string) error {
	b, err := os.ReadFile(path + doneSuffix)
	if errors.Is(err, os.ErrNotExist) {
		removeFile(path + rebuildSuffix)
		return nil
	}
	if err != nil {
		return err
	}
	backup := string(b[:max(len(b)-1, 0)])
	if _, err := os.Stat(path + rebuildSuffix); err == nil {
		// Each of the damaged file's parts on its own: a crash may have moved some. A WAL
		// left at PATH-wal would be applied to the new file.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(path + suffix); err != nil {
				continue
			}
			to := backup + suffix
			if _, err := os.Stat(to); err == nil {
				to += ".2" // never over what is already kept
			}
			if err := os.Rename(path+suffix, to); err != nil {
				return fmt.Errorf("move the damaged file aside: %w", err)
			}
		}
		if err := os.Rename(path+rebuildSuffix, path); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	return os.Remove(path + doneSuffix)
}

func rebuildOrder(ctx context.Context, w *sqlx.DB) ([]string, error) {
	names, err := userTables(ctx, w)
	if err != nil {
		return nil, err
	}
	rank := func(t string) int {
		for i, c := range criticalTables {
			if c == t {
				return i
			}
		}
		for i, h := range historyTables {
			if h == t {
				return 1000 + i
			}
		}
		return 500
	}
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	return names, nil
}

func isHistory(t string) bool {
	for _, h := range historyTables {
		if h == t {
			return true
		}
	}
	return false
}

func removeFile(path string) {
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
