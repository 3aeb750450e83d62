package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// IntegrityBudget is how long the scheduled integrity check (PRAGMA quick_check, a read
// of every page) may take before it is a finding, DB_CHECK_UNFINISHED: at about 1.6 s
// per GB measured on these machines (the December 2026 field run: 2.4 s at 1.49 GB),
// ten minutes covers some 300 GB, four times what 30 days of events at 200 a second
// would be without retention.
const IntegrityBudget = 10 * time.Minute

// integrityDuty is how much of the time the scheduled check may read the file: the
// next check starts at least this many times its last duration after it ended.
const integrityDuty = 10

// IntegrityStatus is the last completed (or abandoned) full integrity check of a
// database, kept in memory: reading it costs nothing.
type IntegrityStatus struct {
	// Result is "ok", the corruption found, "unfinished: …" (the check outlasted
	// IntegrityBudget or was cut off), or "" before the first check.
	Result  string
	Checked time.Time     // when it ended
	Took    time.Duration // how long it read
	Running bool          // a check is under way now
}

// healthState is what the checks found, for Health and Integrity (no I/O to read).
type healthState struct {
	mu      sync.Mutex
	integ   IntegrityStatus
	problem error // the last probe's or check's failure; nil after a pass
	running atomic.Bool
	queries atomic.Int64 // statements run through retry (Queries)
}

func (db *DB) noteIntegrity(start time.Time, err error) {
	res := "ok"
	if err != nil {
		res = err.Error()
	}
	db.hs.mu.Lock()
	db.hs.integ = IntegrityStatus{Result: res, Checked: time.Now(), Took: time.Since(start)}
	db.hs.mu.Unlock()
}

func (db *DB) setHealth(err error) {
	db.hs.mu.Lock()
	db.hs.problem = err
	db.hs.mu.Unlock()
}

// pagesSuspect reports whether the last integrity check found corruption or could not
// finish: only a full check that passes clears it.
func (db *DB) pagesSuspect() bool {
	db.hs.mu.Lock()
	defer db.hs.mu.Unlock()
	return errors.Is(db.hs.problem, ErrCorrupt) || errors.Is(db.hs.problem, errUnfinished)
}

// Integrity returns the last full integrity check's result and when it ran. It reads
// memory only: status pages call it on every request.
func (db *DB) Integrity() IntegrityStatus {
	db.hs.mu.Lock()
	defer db.hs.mu.Unlock()
	st := db.hs.integ
	st.Running = db.hs.running.Load()
	return st
}

// Health is "ok", or the problem the last probe or integrity check found (the file
// replaced or deleted, the connection lost, corruption, an unfinished check). It reads
// memory only.
func (db *DB) Health() string {
	db.hs.mu.Lock()
	defer db.hs.mu.Unlock()
	if db.hs.problem != nil {
		return db.hs.problem.Error()
	}
	return "ok"
}

// Queries counts the statements run through the database's Exec, Get, Select and WithTx
// since it opened (each retry once): what a caller costs the database, for tests
// that bound it.
func (db *DB) Queries() int64 { return db.hs.queries.Load() }

// Probe checks that the file is still the one opened and the writer answers, with no
// page read: cheap at any size. Failures are reported as Check's are; a pass clears a
// lost connection but never a corruption (only a full check can).
func (db *DB) Probe(ctx context.Context) error {
	return db.report(db.probe(ctx), false)
}

// errUnfinished is a scheduled integrity check that did not end within its budget.
var errUnfinished = errors.New("integrity check unfinished")

// RunHealth checks the database until ctx ends: a Probe every interval, and the full
// integrity check (quick_check) on the same ticks, one at a time on its own goroutine,
// no sooner than integrityDuty times its last duration after it ended, within
// IntegrityBudget. A check that does not finish in its budget is a finding
// (DB_CHECK_UNFINISHED, and Health says so until a check completes), never a pass.
func (db *DB) RunHealth(ctx context.Context, every time.Duration) {
	db.runHealth(ctx, every, IntegrityBudget)
}

func (db *DB) runHealth(ctx context.Context, every, budget time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(every)
	defer t.Stop()
	var next time.Time // the full check is due
	done := make(chan time.Time, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case next = <-done:
			db.hs.running.Store(false)
			continue
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, every)
		_ = db.Probe(cctx)
		cancel()
		if db.hs.running.Load() || time.Now().Before(next) {
			continue
		}
		db.hs.running.Store(true)
		wg.Go(func() {
			start := time.Now()
			db.scheduledCheck(ctx, budget)
			end := time.Now()
			done <- end.Add(max(every, integrityDuty*end.Sub(start)))
		})
	}
}

// scheduledCheck is one full check within budget.
func (db *DB) scheduledCheck(ctx context.Context, budget time.Duration) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := db.check(cctx)
	if !errors.Is(err, errInconclusive) {
		db.noteIntegrity(start, err)
		_ = db.report(err, true)
		return
	}
	if ctx.Err() != nil {
		return // remedy is stopping: not a finding
	}
	err = fmt.Errorf("%w: PRAGMA quick_check did not end within %v (the pages it did not reach are unchecked)", errUnfinished, budget)
	db.noteIntegrity(start, err)
	db.setHealth(err)
	db.unhealthy.Store(true) // DB_OK when a check completes again
	db.emit("DB_CHECK_UNFINISHED", err.Error())
}
