// Package store owns remedy's SQLite databases (sqlx over modernc.org/sqlite, no cgo):
// the connection pools, retries of locked queries, transactions, embedded migrations,
// health checks and reopening, recovery from corruption and from a full disk. No
// *sql.DB leaves the package; callers use DB's methods and Tx.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/remedy-run/remedy/engine"
)

// Options configure a database.
type Options struct {
	Path   string
	Name   string // the "db" label of its events, e.g. "remedy" or "metrics"
	Schema Schema
	// Readers is the size of the read pool (default 4). Writes go through one
	// connection, which is how SQLite works best.
	Readers int
	// BusyTimeout is SQLite's own wait for a lock before reporting SQLITE_BUSY (default
	// 200 ms); longer waits go through Retry, which reports them.
	BusyTimeout time.Duration
	Retry       Retry
	// CreatePragmas are pragmas the writer runs when it creates the file, before the
	// first table, e.g. "auto_vacuum(2)": properties of the file, which an existing file
	// keeps. They are not run on an existing file, where setting them would wait for the
	// write lock: no connection, and no RESET_DB, would open while another process holds
	// it.
	CreatePragmas []string
	// Events receives DB_* events; it must not block.
	Events func(engine.Event)
	// OnFull is called when a write fails with SQLITE_FULL; if it frees space (returns
	// true) the write is tried once more.
	OnFull func() bool
	Logger *slog.Logger
	// Repair checks the file at open and rebuilds it if it is damaged, instead of failing
	// or opening it as it is. The daemon's data directory sets it (OpenData); tools that
	// open a file another process may be using (remedy deadletter, replay) must not.
	Repair bool
	// Progress, if set, is told how a rebuild goes after every batch it copies (see
	// RebuildProgress); it must not block. The daemon logs it and tells systemd.
	Progress func(RebuildProgress)
	// rebuildBatch overrides rebuildBatch (0: the default). Tests only: a small batch
	// gives a small file as many batches, and so as many interruption points, as a large
	// one, at a fraction of the cost under the race detector.
	rebuildBatch int
	// syncAtCheckpoints makes writes return at their commit, without waiting for the
	// WAL's fsync (walsync.go) (tests only, where durability across a power cut is not
	// what is tested: in WAL mode a crash of the process still loses no commit). Every
	// commit's sync costs milliseconds on a busy disk, and a synctest bubble's clock
	// waits for it.
	syncAtCheckpoints bool

	// Tests' hooks (nil in remedy), per database so that tests of rebuilds run in
	// parallel: crashPoint stops a swap between its marker and its renames, as a crash
	// there would; swapCopied is told how many rows the swap copied again.
	crashPoint func() error
	swapCopied func(rows int64)
}

// batch is the rows a rebuild copies per transaction.
func (o Options) batch() int64 {
	if o.rebuildBatch > 0 {
		return int64(o.rebuildBatch)
	}
	return rebuildBatch
}

// DB is one SQLite database file with a writer connection and a reader pool. It is safe
// for concurrent use. Open it with Open and close it with Close.
type DB struct {
	opts Options
	mu   sync.RWMutex // held for writing only while the handles are replaced
	h    *handles
	// closed is set by Close (under mu): only then do nil handles stay nil. Otherwise
	// nil handles were lost to a reopen that could not open new ones, and restore opens
	// them again, at most once per restoreEvery (restoreNext, restoreErr, under mu).
	closed      bool
	restoreNext time.Time
	restoreErr  error

	reopens   atomic.Int64
	syncs     atomic.Int64 // fsyncs of the WAL for commits (walsync.go)
	busyCount atomic.Int64
	lastBusy  atomic.Int64 // unix nanos of the last DB_BUSY emitted
	ioErrs    atomic.Int64 // operations that met SQLITE_IOERR and retried
	lastIOErr atomic.Int64 // unix nanos of the last DB_IOERR emitted
	unhealthy atomic.Bool
	// rebuild is the running Rebuild (nil: none), under rebuildMu; progress is its
	// progress.
	rebuildMu sync.Mutex
	rebuild   *rebuildRun
	progress  atomic.Pointer[RebuildProgress]
	// openRepair is the rebuild done at open, until a Clean reports it.
	openRepair atomic.Pointer[Report]
	full       atomic.Pointer[string] // the last write's SQLITE_FULL, until a write succeeds
	hs         healthState            // what the checks found (integrity.go)
}

// Full returns why the last write failed for lack of space ("" if it did not, or a later
// write succeeded): the dashboard's and !status's "disk full".
func (db *DB) Full() string {
	if p := db.full.Load(); p != nil {
		return *p
	}
	return ""
}

type handles struct {
	w, r     *sqlx.DB
	dev, ino uint64
	wal      walID     // the PATH-wal the connections opened (wal.go)
	stmts    stmtCache // the writer's prepared statements (stmtcache.go)
	sync     *walSync  // the writes' syncs of PATH-wal (walsync.go)
}

// durable waits until the commit just made on h is on disk (walsync.go). Its error is
// not transient: the commit happened, so the write must not be run again.
func (db *DB) durable(ctx context.Context, h *handles) error {
	if db.opts.syncAtCheckpoints {
		h.sync.committed()
		return nil
	}
	return db.waitSynced(ctx, h, h.sync.committed())
}

// waitSynced waits until the commit with ticket n is on disk. A failed sync is reported
// as DB_IOERR and tried again (as a checkpoint: walsync.go) like any I/O error, within
// ctx's deadline or the retry budget; giving up is DB_RETRY_EXHAUSTED, so a disk that
// keeps refusing raises db-retry-exhausted as it did when SQLite synced in the commit.
// The error wraps errSync: the commit was made, and is not known to be on disk.
func (db *DB) waitSynced(ctx context.Context, h *handles, n uint64) error {
	giveUp := time.Now().Add(db.opts.Retry.Budget)
	if dl, ok := ctx.Deadline(); ok {
		giveUp = dl
	}
	delay := db.opts.Retry.Initial
	for tries := 1; ; tries++ {
		err := h.sync.wait(n)
		if err == nil {
			return nil
		}
		if tries == 1 {
			db.emit("DB_IOERR", err.Error())
		}
		if db.opts.Retry.Off || ctx.Err() != nil {
			return err
		}
		if time.Now().After(giveUp) {
			db.emit("DB_RETRY_EXHAUSTED", fmt.Sprintf("sync: gave up after %d tries: %v", tries, err))
			return fmt.Errorf("sync: gave up after %d tries: %w", tries, err)
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, db.opts.Retry.Max)
	}
}

// Open opens (creating if needed) the database at opts.Path and applies its migrations.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 200 * time.Millisecond
	}
	if opts.Retry == (Retry{}) {
		opts.Retry = DefaultRetry
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(opts.Path)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	db := &DB{opts: opts}
	// A rebuild interrupted after its copy was complete is swapped in; one interrupted
	// before is thrown away (the damaged file is still at Path and is rebuilt again).
	if err := finishSwap(opts.Path); err != nil {
		return nil, fmt.Errorf("open %s: finish an interrupted rebuild: %w", opts.Name, err)
	}
	h, err := db.openHandles(ctx)
	if err == nil {
		db.h = h
		if !opts.Repair {
			return db, nil
		}
		start := time.Now()
		err = db.check(ctx) // a file damaged while remedy was down is repaired before use
		if err == nil {
			db.noteIntegrity(start, nil) // status shows it until the first scheduled check
			return db, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			db.Close()
			return nil, err
		}
	}
	if !errors.Is(err, ErrCorrupt) || !opts.Repair {
		return nil, err
	}
	// Damaged: refusing to start would leave the bot unwatched, so rebuild it now from
	// what can be read (as CLEAN_DATA would), keeping the damaged file beside it.
	rep, rerr := db.Rebuild(ctx)
	if rerr != nil {
		db.emit("DB_CORRUPT", err.Error())
		return nil, fmt.Errorf("%w; rebuilding it failed too: %v", err, rerr)
	}
	// Told after the rebuild, so the alert can say where the damaged file went and what
	// was lost; the CLEAN_DATA it starts reports the same (see Clean).
	db.openRepair.Store(&rep)
	db.emit("DB_CORRUPT", fmt.Sprintf("%v; rebuilt when remedy opened it: %s", err, rep))
	opts.Logger.Error("database was corrupt at open; rebuilt from the readable rows", "db", opts.Name, "report", rep.String())
	return db, nil
}

// dsn is a connection's data source name; create adds CreatePragmas (the writer of a
// file that does not exist yet). synchronous=NORMAL, and every write waits for an fsync
// of the WAL after its commit (walsync.go): as durable as FULL, so an input answered 202
// survives a power cut too, not only a crash of remedy
// (sqlite.org/pragma.html#pragma_synchronous), but the sync is made outside the one
// writer connection and shared by the commits made meanwhile (about 0.15 ms on these
// machines' disks when idle).
func (db *DB) dsn(readOnly, create bool) string {
	q := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		FileURI(db.opts.Path), db.opts.BusyTimeout.Milliseconds())
	if create {
		for _, p := range db.opts.CreatePragmas {
			q += "&_pragma=" + p
		}
	}
	if readOnly {
		q += "&_pragma=query_only(1)"
	}
	return q
}

func (db *DB) openHandles(ctx context.Context) (*handles, error) {
	st, err := os.Stat(db.opts.Path)
	create := err != nil || st.Size() == 0
	w, err := sqlx.Open("sqlite", db.dsn(false, create))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db.opts.Name, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", db.opts.Name, wrap(err))
	}
	if err := migrate(ctx, w, db.opts.Schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", db.opts.Name, wrap(err))
	}
	r, err := sqlx.Open("sqlite", db.dsn(true, false))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", db.opts.Name, err)
	}
	r.SetMaxOpenConns(db.opts.Readers)
	r.SetMaxIdleConns(db.opts.Readers)
	h := &handles{w: w, r: r}
	h.sync = newWALSync(db.opts.Path, &h.wal, &db.syncs)
	h.sync.checkpoint = h.checkpointAll
	h.dev, h.ino = fileID(db.opts.Path)
	db.walGone(h) // records the WAL's identity
	return h, nil
}

// checkpointAll copies every frame of the WAL into the database file and syncs it (a
// FULL checkpoint waits for readers on older snapshots, through the busy timeout): after
// a failed sync of the WAL, what puts its commits on disk (walsync.go). An incomplete
// checkpoint is an error.
func (h *handles) checkpointAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var busy, frames, copied int
	if err := h.w.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(FULL)`).Scan(&busy, &frames, &copied); err != nil {
		return err
	}
	if busy != 0 || copied < frames {
		return fmt.Errorf("checkpoint incomplete: %d of %d frames copied (busy %d)", copied, frames, busy)
	}
	return nil
}

func (h *handles) close() error {
	h.closeStmts()
	errR := h.r.Close()
	errW := h.w.Close()
	h.sync.close()
	if errW != nil {
		return errW
	}
	return errR
}

// Close closes the database.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.closed = true
	if db.h == nil {
		return nil
	}
	err := db.h.close()
	db.h = nil
	return err
}

// Path is the database file.
func (db *DB) Path() string { return db.opts.Path }

// Name is the database's name in events.
func (db *DB) Name() string { return db.opts.Name }

// with runs f with the current handles held, so a reopen waits for it to finish. Handles
// lost to a reopen that could not open new ones (RESET_DB or a rebuild's swap while
// another process held the write lock) are opened again first (restore).
func (db *DB) with(f func(h *handles) error) error {
	db.mu.RLock()
	if db.h == nil {
		db.mu.RUnlock()
		if err := db.restore(); err != nil {
			return err
		}
		db.mu.RLock()
	}
	defer db.mu.RUnlock()
	if db.h == nil {
		return sql.ErrConnDone
	}
	return f(db.h)
}

// restoreEvery is how often restore tries to open lost handles again.
const restoreEvery = time.Second

// restore opens the handles again when a reopen closed the old ones and failed to open
// new ones: without it the database would answer "connection is already closed" until
// remedy restarts. A closed DB stays closed. It returns the open's error (transient:
// callers retry), the last one while it waits for its next try.
func (db *DB) restore() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.h != nil || db.closed {
		return nil
	}
	if time.Now().Before(db.restoreNext) {
		return fmt.Errorf("%w: %v", sql.ErrConnDone, db.restoreErr)
	}
	h, err := db.openHandles(context.Background())
	if err != nil {
		db.restoreNext, db.restoreErr = time.Now().Add(restoreEvery), err
		return err
	}
	db.h, db.restoreNext, db.restoreErr = h, time.Time{}, nil
	db.reopens.Add(1)
	db.opts.Logger.Info("database handles opened again after a failed reopen", "db", db.opts.Name)
	return nil
}

// writer is with for writes: it first makes sure the file at Path is still the one the
// handles hold. A write into a file that was replaced (restored from a backup, copied
// over) would land in the orphaned old inode and be lost when it closes; instead the
// write waits, as for a lock, until RESET_DB reopens the pool on the new file, and the
// replacement is reported at once rather than at the next health check.
func (db *DB) writer(f func(h *handles) error) error {
	return db.with(func(h *handles) error {
		if db.replaced(h) {
			if db.unhealthy.CompareAndSwap(false, true) {
				db.emitLost(fmt.Errorf("%w: file replaced", ErrConnLost))
			}
			return errReplaced
		}
		return f(h)
	})
}

// replaced reports whether the file at Path, or its WAL, is no longer the one the
// handles hold (replaced, or deleted).
func (db *DB) replaced(h *handles) bool {
	d, i := fileID(db.opts.Path)
	return d != h.dev || i != h.ino || db.walGone(h)
}

// errReplaced is a write refused because the file was replaced; it is retried.
var errReplaced = fmt.Errorf("%w: file replaced; waiting for the pool to be reopened", ErrConnLost)

// Exec runs a write statement, retrying while the database is locked.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.retry(ctx, "exec", func(ctx context.Context) error {
		return db.writer(func(h *handles) error {
			var err error
			if s := h.stmt(ctx, query); s != nil {
				res, err = s.ExecContext(ctx, args...)
			} else {
				res, err = h.w.ExecContext(ctx, query, args...)
			}
			if err != nil {
				return err
			}
			db.full.Store(nil)
			return db.durable(ctx, h)
		})
	})
	return res, err
}

// Get reads one row into dest from the reader pool.
func (db *DB) Get(ctx context.Context, dest any, query string, args ...any) error {
	return db.retry(ctx, "get", func(ctx context.Context) error {
		return db.with(func(h *handles) error { return h.r.GetContext(ctx, dest, query, args...) })
	})
}

// Select reads rows into dest (a pointer to a slice) from the reader pool.
func (db *DB) Select(ctx context.Context, dest any, query string, args ...any) error {
	return db.retry(ctx, "select", func(ctx context.Context) error {
		return db.with(func(h *handles) error { return h.r.SelectContext(ctx, dest, query, args...) })
	})
}

// Tx is a write transaction inside WithTx.
type Tx struct {
	tx *sqlx.Tx
	h  *handles // for prepared statements; nil runs every query directly
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// Get reads one row in the transaction.
func (t *Tx) Get(ctx context.Context, dest any, query string, args ...any) error {
	if s := t.stmt(ctx, query); s != nil {
		return s.GetContext(ctx, dest, args...)
	}
	return t.tx.GetContext(ctx, dest, query, args...)
}

// Select reads rows in the transaction.
func (t *Tx) Select(ctx context.Context, dest any, query string, args ...any) error {
	if s := t.stmt(ctx, query); s != nil {
		return s.SelectContext(ctx, dest, args...)
	}
	return t.tx.SelectContext(ctx, dest, query, args...)
}

// Prepare prepares a statement for repeated use in the transaction.
func (t *Tx) Prepare(ctx context.Context, query string) (*sqlx.Stmt, error) {
	return t.tx.PreparexContext(ctx, query)
}

// WithTx runs fn in a write transaction (BEGIN IMMEDIATE). It commits if fn returns nil,
// rolls back if fn returns an error or panics (and then re-panics), and runs fn again
// from the start when the failure is transient (a lock, a reopen). fn must therefore
// be safe to run more than once. It returns once the commit is on disk (it survives a
// power cut); an error after the commit (the sync failed) is not retried.
func (db *DB) WithTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	return db.withTx(ctx, fn, true)
}

// WithTxUnsynced is WithTx returning as soon as the commit is made, without waiting for
// the disk: the transaction survives a crash of remedy, and a power cut may undo it
// together with every transaction after it, until the next write that waits for the
// disk carries it there (commits reach the disk in order). For writes that may be done
// again after such a loss, and that give out nothing that must not be given twice: a
// queue's claims (the item is handed out again, under the same id). A transaction that
// inserts rows whose ids leave remedy must not use it (ids of lost rows are given again).
func (db *DB) WithTxUnsynced(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	return db.withTx(ctx, fn, false)
}

func (db *DB) withTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error, wait bool) error {
	return db.retry(ctx, "transaction", func(ctx context.Context) error {
		return db.writer(func(h *handles) error {
			tx, err := h.w.BeginTxx(ctx, nil)
			if err != nil {
				return err
			}
			committed := false
			defer func() {
				if !committed {
					_ = tx.Rollback()
				}
			}()
			if err := fn(ctx, &Tx{tx: tx, h: h}); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			committed = true
			db.full.Store(nil)
			h.preparePending(ctx) // the connection is free again
			if !wait {
				h.sync.committed()
				return nil
			}
			return db.durable(ctx, h)
		})
	})
}

// Sync returns once every commit made before it was called is on disk: for a caller that
// committed with WithTxUnsynced (or Queue.EnqueueUnsynced) and holds back what it tells
// others until then. It shares the syncs of the writes under way. A closed database
// has nothing left to sync (closing checkpointed its WAL). Its error is a failed sync.
func (db *DB) Sync() error {
	err := db.with(func(h *handles) error {
		return db.waitSynced(context.Background(), h, h.sync.current())
	})
	if errors.Is(err, sql.ErrConnDone) && db.isClosed() {
		return nil
	}
	return err
}

func (db *DB) isClosed() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.closed
}

// PoolStats describe the connection pools, for the monitor.
type PoolStats struct {
	Open, InUse, Idle int
	WaitCount         int64
	WaitDuration      time.Duration
	Reopens           int64
	BusyWaits         int64 // operations that had to wait for a lock
	// Syncs counts the fsyncs that put commits on disk; one serves every commit made
	// while the one before it ran (walsync.go).
	Syncs int64
}

// Stats returns the pools' statistics (writer and readers together).
func (db *DB) Stats() PoolStats {
	var s PoolStats
	_ = db.with(func(h *handles) error {
		for _, p := range []*sqlx.DB{h.w, h.r} {
			st := p.Stats()
			s.Open += st.OpenConnections
			s.InUse += st.InUse
			s.Idle += st.Idle
			s.WaitCount += st.WaitCount
			s.WaitDuration += st.WaitDuration
		}
		return nil
	})
	s.Reopens = db.reopens.Load()
	s.BusyWaits = db.busyCount.Load()
	s.Syncs = db.syncs.Load()
	return s
}

// emit sends a DB_* event. DB_BUSY and DB_IOERR are throttled to one per 100 ms per
// database each (the value is the running count of such waits), so a contended or failing
// database cannot flood the engine or the event log it writes to.
func (db *DB) emit(code, msg string) {
	value := 0.0
	var count, last *atomic.Int64
	switch code {
	case "DB_BUSY":
		count, last = &db.busyCount, &db.lastBusy
	case "DB_IOERR":
		count, last = &db.ioErrs, &db.lastIOErr
	}
	if count != nil {
		n := count.Add(1)
		now := time.Now().UnixNano()
		prev := last.Load()
		if now-prev < int64(100*time.Millisecond) || !last.CompareAndSwap(prev, now) {
			return
		}
		value = float64(n)
	}
	db.emitValue(code, msg, value)
}

// emitValue sends one DB_* event with its value (no rate limit).
func (db *DB) emitValue(code, msg string, value float64) {
	db.opts.Logger.Debug("store event", "db", db.opts.Name, "code", code, "message", msg)
	if db.opts.Events != nil {
		db.opts.Events(engine.Event{Time: time.Now(), Code: code, Source: "store",
			Labels: map[string]string{"db": db.opts.Name}, Message: msg, Value: value})
	}
}

// noteFailure reports a non-transient failure that the engine should know about.
func (db *DB) noteFailure(err error) {
	switch classify(err) {
	case classCorrupt:
		db.unhealthy.Store(true)
		db.emit("DB_CORRUPT", err.Error())
	case classFull:
		msg := err.Error()
		db.full.Store(&msg)
		db.emit("DB_FULL", msg)
	}
}

// sub returns the migrations directory of an embedded file system, for Schema.
func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // a missing embedded directory is a build mistake
	}
	return s
}
