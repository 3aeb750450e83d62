package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors callers can branch on.
var (
	// ErrCorrupt: the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB or a failed
	// integrity check). CLEAN_DATA rebuilds it.
	ErrCorrupt = errors.New("database corrupt")
	// ErrFull: the disk or the database's page limit is full (SQLITE_FULL).
	ErrFull = errors.New("database full")
	// ErrShed: a low-priority write (a metric sample) was dropped to keep room for
	// events, alerts and queue items.
	ErrShed = errors.New("write shed: disk full")
)

// class is what an error means for retrying.
type class int

const (
	classOther     class = iota // not retried (constraint, syntax, …)
	classBusy                   // SQLITE_BUSY / SQLITE_LOCKED: retry
	classTransient              // I/O error, handle closed during a reopen: retry
	classCorrupt                // not retried; DB_CORRUPT
	classFull                   // not retried; DB_FULL
	classDeadline               // the caller's context ended
)

func classify(err error) class {
	if err == nil {
		return classOther
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return classDeadline
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, errReplaced) || strings.Contains(err.Error(), "sql: database is closed") {
		return classTransient
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return classBusy
		case sqlite3.SQLITE_IOERR:
			return classTransient
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return classCorrupt
		case sqlite3.SQLITE_FULL:
			return classFull
		case sqlite3.SQLITE_INTERRUPT:
			return classDeadline
		}
		return classOther
	}
	// modernc reports an interrupted statement as a plain error in some paths.
	if strings.Contains(err.Error(), "interrupted") {
		return classDeadline
	}
	return classOther
}

// wrap adds the sentinel for corrupt and full errors so callers can use errors.Is.
func wrap(err error) error {
	switch classify(err) {
	case classCorrupt:
		return errors.Join(ErrCorrupt, err)
	case classFull:
		return errors.Join(ErrFull, err)
	}
	return err
}

// isIOErr reports whether err is SQLITE_IOERR (any extended code): the kernel refused a
// read, write or sync of the file. It is retried like a lock, but reported as DB_IOERR.
func isIOErr(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_IOERR
}
