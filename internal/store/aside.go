package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
)

// CheckFile reads the SQLite file at path as a database and runs SQLite's quick_check
// over it (O(size): about what reading the file costs), with no write of its own
// (SQLite may checkpoint a WAL a crash left behind when it closes). It returns nil when the file is missing (a fresh
// start) or whole; an error wrapping ErrCorrupt when the file is not a database (a bad
// header, another kind of file) or its pages are damaged; any other error (permissions,
// I/O) as it is, which the caller must not take for corruption. It is for files remedy
// does not own the schema of (whatsmeow's device store); remedy.db has its own health
// check and repair (Check, Rebuild).
func CheckFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := sqlx.Open("sqlite", FileURI(path)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return wrap(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var res []string
	if err := db.SelectContext(ctx, &res, `PRAGMA quick_check`); err != nil {
		return wrap(err)
	}
	if len(res) != 1 || res[0] != "ok" {
		return fmt.Errorf("%w: quick_check: %v", ErrCorrupt, res)
	}
	return nil
}

// MoveAside renames the database file at path, with its -wal and -shm files, to
// PATH.corrupt-TIME (TIME in UTC, to the millisecond, from now), and returns that name.
// Nothing is deleted: the operator may still recover something from it (invariant 9).
// A missing companion file is not an error; a failed rename is, and the file then
// stays where it was.
func MoveAside(path string, now time.Time) (string, error) {
	backup := path + ".corrupt-" + now.UTC().Format("20060102T150405.000Z")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, backup+suffix); err != nil && !os.IsNotExist(err) {
			return backup, fmt.Errorf("move %s aside: %w", path+suffix, err)
		}
	}
	return backup, nil
}

// IsCorrupt reports whether err says that a database file is damaged (ErrCorrupt,
// SQLITE_CORRUPT, SQLITE_NOTADB), from this package or from a library that runs its
// own queries on modernc's driver (whatsmeow's sqlstore).
func IsCorrupt(err error) bool {
	return errors.Is(err, ErrCorrupt) || classify(err) == classCorrupt
}
