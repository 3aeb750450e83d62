package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// ErrConnLost means the handle no longer reaches the file at Path: it was deleted or
// replaced, or the connection broke. Reopen fixes it.
var ErrConnLost = errors.New("database connection lost")

// errInconclusive is a check cut off by its own deadline while the connection was busy
// (a long write waiting on a lock holds the only writer): not evidence of a lost handle.
var errInconclusive = errors.New("health check inconclusive: the database is busy")

// Check probes the database: the file is still the one opened, the writer answers, and
// PRAGMA quick_check passes (a read of every page: seconds on a file of gigabytes, so
// callers on a request path read Health instead). A failure is reported as DB_CONN_LOST
// or DB_CORRUPT; the first success after a failure as DB_OK. Its result is the one
// Integrity returns.
func (db *DB) Check(ctx context.Context) error {
	start := time.Now()
	err := db.check(ctx)
	if !errors.Is(err, errInconclusive) {
		db.noteIntegrity(start, err)
	}
	return db.report(err, true)
}

// report turns a check's error into DB_* events and the health state Health returns;
// full says the check read the pages (a probe's pass does not clear what one found).
func (db *DB) report(err error, full bool) error {
	switch {
	case errors.Is(err, errInconclusive):
		return nil
	case err == nil:
		if !full && db.pagesSuspect() {
			return nil // a probe that passes says nothing about the pages
		}
		db.setHealth(nil)
		if db.unhealthy.CompareAndSwap(true, false) {
			db.emit("DB_OK", "health check passed")
		}
	case errors.Is(err, ErrCorrupt):
		db.setHealth(err)
		db.unhealthy.Store(true)
		db.emit("DB_CORRUPT", err.Error())
	default:
		db.setHealth(err)
		db.unhealthy.Store(true)
		db.emitLost(err)
	}
	return err
}

// emitLost reports DB_CONN_LOST with the labels the code catalogue gives it: db and
// reason, a short word for why (db-conn-lost's summary shows it); the message has the
// whole error.
func (db *DB) emitLost(err error) {
	if db.opts.Events == nil {
		return
	}
	db.opts.Logger.Debug("store event", "db", db.opts.Name, "code", "DB_CONN_LOST", "message", err.Error())
	db.opts.Events(engine.Event{Time: time.Now(), Code: "DB_CONN_LOST", Source: "store",
		Labels: map[string]string{"db": db.opts.Name, "reason": lostReason(err)}, Message: err.Error()})
}

// lostReason is DB_CONN_LOST's reason label: closed, file deleted, file replaced, wal
// deleted or replaced, or connection broken.
func lostReason(err error) string {
	why := strings.TrimPrefix(err.Error(), ErrConnLost.Error()+": ")
	for _, r := range []string{"closed", "file deleted", "file replaced"} {
		if why == r {
			return r
		}
	}
	if strings.HasPrefix(why, "write-ahead log ") {
		return "wal deleted or replaced"
	}
	return "connection broken"
}

func (db *DB) check(ctx context.Context) error {
	if err := db.probe(ctx); err != nil {
		return err
	}
	return db.quickCheck(ctx)
}

// probe checks that the file is the one opened, its WAL is still its own, and the writer
// answers: a few system calls and no page read, whatever the file's size.
func (db *DB) probe(ctx context.Context) error {
	var replaced, walGone bool
	if err := db.with(func(h *handles) error { replaced, walGone = db.replaced(h), db.walGone(h); return nil }); err != nil {
		return fmt.Errorf("%w: closed", ErrConnLost)
	}
	if _, err := os.Stat(db.opts.Path); err != nil {
		return fmt.Errorf("%w: file deleted", ErrConnLost)
	}
	if walGone {
		return fmt.Errorf("%w: write-ahead log %s-wal deleted or replaced (commits since are only in the open file; reopening saves them)", ErrConnLost, db.opts.Path)
	}
	if replaced {
		return fmt.Errorf("%w: file replaced", ErrConnLost)
	}
	return db.with(func(h *handles) error {
		if err := h.w.PingContext(ctx); err != nil {
			if ctx.Err() != nil {
				return errInconclusive
			}
			return fmt.Errorf("%w: %v", ErrConnLost, err)
		}
		return nil
	})
}

// quickCheck runs PRAGMA quick_check on a reader: every page is read.
func (db *DB) quickCheck(ctx context.Context) error {
	return db.with(func(h *handles) error {
		var res []string
		if err := h.r.SelectContext(ctx, &res, `PRAGMA quick_check`); err != nil {
			if classify(err) == classCorrupt {
				return errors.Join(ErrCorrupt, err)
			}
			if ctx.Err() != nil {
				return errInconclusive
			}
			return fmt.Errorf("%w: %v", ErrConnLost, err)
		}
		if len(res) != 1 || res[0] != "ok" {
			return fmt.Errorf("%w: quick_check: %v", ErrCorrupt, res)
		}
		return nil
	})
}

// Reopen replaces the connection pools with new ones on the file at Path (the RESET_DB
// recovery). Operations in flight finish first; operations retrying wait and then use
// the new handles, so their writes are not lost.
//
// On the same file and WAL, the new handles open beside the old ones, which close only
// once they did: a reopen that cannot open (another process holds the write lock, and
// the open sets pragmas that wait for it) returns that error and leaves the database as
// it was, readable. When the file or its WAL was replaced, the old handles are closed
// before the new ones open: closing checkpoints the old WAL and removes PATH-wal, which
// would otherwise be applied on top of a file that replaced the old one; if the new ones
// then cannot open, the next use of the database opens them again (restore), so a failed
// RESET_DB never leaves the database without connections.
func (db *DB) Reopen(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	replaced := false
	if db.h != nil {
		dev, ino := fileID(db.opts.Path)
		replaced = dev != db.h.dev || ino != db.h.ino
		walGone := !replaced && db.walGone(db.h)
		if !replaced && !walGone {
			h, err := db.openHandles(ctx)
			if err != nil {
				return err
			}
			_ = db.h.close()
			db.h = h
			db.reopens.Add(1)
			return nil
		}
		if walGone {
			// The WAL was unlinked: fold what only the open descriptor still holds
			// into the file before the connections close.
			_, _ = db.h.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
		}
		if replaced {
			// The WAL at PATH-wal belongs to the old file: fold it into the old inode.
			_, _ = db.h.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
		}
		_ = db.h.close()
		db.h = nil
	}
	if replaced {
		if err := moveAsideStale(db.opts.Path); err != nil {
			return fmt.Errorf("reopen %s: %w", db.opts.Name, err)
		}
	}
	h, err := db.openHandles(ctx)
	if err != nil {
		return err
	}
	db.h = h
	db.reopens.Add(1)
	return nil
}

// moveAsideStale renames a leftover non-empty WAL of a replaced file (and its index) to
// PATH-wal.stale-TIME: applying it to the new file would corrupt it, and deleting it
// could lose the old file's last writes.
func moveAsideStale(path string) error {
	st, err := os.Stat(path + "-wal")
	if err != nil || st.Size() == 0 {
		return nil
	}
	stamp := time.Now().UTC().Format("20060102T150405.000Z")
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(path+suffix, path+suffix+".stale-"+stamp); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// IntegrityCheck runs the full PRAGMA integrity_check, on a reader connection: on a
// large file it reads for many seconds, and on the writer it would hold every write (and
// so ingest) that long.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	return db.with(func(h *handles) error {
		var res []string
		if err := h.r.SelectContext(ctx, &res, `PRAGMA integrity_check`); err != nil {
			return wrap(err)
		}
		if len(res) != 1 || res[0] != "ok" {
			return fmt.Errorf("%w: integrity_check: %v", ErrCorrupt, res)
		}
		return nil
	})
}
