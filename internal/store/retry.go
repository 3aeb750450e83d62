package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Retry is how operations wait out a locked database.
type Retry struct {
	Initial, Max time.Duration // first and largest delay between tries
	// Budget is how long an operation may keep retrying when the caller's context has no
	// deadline.
	Budget time.Duration
	// Off makes every operation a single try: what a bot without remedy's retry gets
	// (the fault drills' baseline).
	Off bool
}

// DefaultRetry waits 5 ms, doubling to 250 ms, for up to 10 s.
var DefaultRetry = Retry{Initial: 5 * time.Millisecond, Max: 250 * time.Millisecond, Budget: 10 * time.Second}

// retry runs op until it succeeds, fails with an error that is not transient, or the
// deadline (the caller's, or the budget) passes. It reports the first wait as DB_BUSY (as
// DB_IOERR when it is SQLITE_IOERR) and a give-up as DB_RETRY_EXHAUSTED; a statement cut
// off by the deadline without any lock wait is DB_TIMEOUT.
//
// The budget bounds the time spent waiting for locks, not a statement's own work: a long
// compaction on a slow or loaded machine is not cut off (a context deadline would make
// the outcome depend on the machine's speed).
func (db *DB) retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	var giveUp time.Time // zero: the caller's deadline bounds the retries
	if _, ok := ctx.Deadline(); !ok && db.opts.Retry.Budget > 0 {
		giveUp = time.Now().Add(db.opts.Retry.Budget)
	}
	delay := db.opts.Retry.Initial
	tries := 0
	freed := false
	var last error
	for {
		tries++
		db.hs.queries.Add(1)
		err := op(ctx)
		if err == nil {
			return nil
		}
		c := classify(err)
		switch c {
		case classBusy, classTransient:
			last = err
			if tries == 1 {
				// An I/O error is not a lock: telling it apart keeps the busy alert's
				// "something holds the write lock" from sending the operator the wrong way.
				code := "DB_BUSY"
				if isIOErr(err) {
					code = "DB_IOERR"
				}
				db.emit(code, fmt.Sprintf("%s: %v", what, err))
			}
			if db.opts.Retry.Off {
				return err
			}
		case classDeadline:
			if callerGone(ctx) {
				return err // the caller stopped waiting (shutdown, a client gone): not a fault of the database
			}
			if last != nil {
				db.emit("DB_RETRY_EXHAUSTED", fmt.Sprintf("%s: gave up after %d tries: %v", what, tries, last))
				return fmt.Errorf("%s: gave up after %d tries: %w", what, tries, last)
			}
			db.emit("DB_TIMEOUT", fmt.Sprintf("%s: %v", what, err))
			return err
		case classFull:
			db.noteFailure(err)
			// Events, alerts and queue items may use the space the reserve frees; once.
			if !freed && db.opts.OnFull != nil && db.opts.OnFull() {
				freed = true
				continue
			}
			return wrap(err)
		default:
			db.noteFailure(err)
			return wrap(err)
		}
		if !giveUp.IsZero() && time.Now().After(giveUp) {
			db.emit("DB_RETRY_EXHAUSTED", fmt.Sprintf("%s: gave up after %d tries: %v", what, tries, last))
			return fmt.Errorf("%s: gave up after %d tries: %w", what, tries, last)
		}
		// Equal jitter: at least half the delay, so waiters spread but keep backing off.
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if callerGone(ctx) {
				return fmt.Errorf("%s: %w after %d tries: %w", what, ctx.Err(), tries, last)
			}
			db.emit("DB_RETRY_EXHAUSTED", fmt.Sprintf("%s: gave up after %d tries: %v", what, tries, last))
			return fmt.Errorf("%s: gave up after %d tries: %w", what, tries, last)
		case <-t.C:
		}
		delay = min(delay*2, db.opts.Retry.Max)
	}
}

// callerGone reports whether ctx was canceled by its caller rather than cut off by a
// deadline: a query abandoned at shutdown or by a client that went away says nothing
// about the database, so it raises no DB_TIMEOUT or DB_RETRY_EXHAUSTED (three of them
// at a stop under load paged db-retry-exhausted on a healthy database).
func callerGone(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}
