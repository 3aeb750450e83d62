// Package queue provides durable, bounded queues in SQLite (remedy.db's queue_items)
// with a worker pool, per-item attempts and timeouts, panic recovery, a dead-letter
// table, and a watchdog that reports a stuck or nearly full queue. Nothing is deleted
// except items that were processed: failures and cleared items go to dead_letters, from
// where they can be replayed.
package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// ErrFull is returned by Enqueue when the queue holds Capacity items.
var ErrFull = errors.New("queue full")

// Item is one queued payload.
type Item struct {
	ID       int64
	Queue    string
	Payload  json.RawMessage
	Attempts int // including the current one
	Enqueued time.Time
}

// Handler processes an item. It must honour ctx (the per-item timeout). Effects outside
// remedy.db are at-least-once: use Item.ID to make them idempotent.
type Handler func(ctx context.Context, it Item) error

// MaxRetryDelay caps the doubling retry delay (and a handler's Retry-After).
const MaxRetryDelay = 5 * time.Minute

// RetryAfterError is a handler's failure that names when to try again (an HTTP 503 or
// 429 with Retry-After): the next attempt waits at least After.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// DefaultStuckAfter is the least Options.StuckAfter's default (1.25 × ItemTimeout if
// that is longer).
const DefaultStuckAfter = time.Minute

// Options configure a queue.
type Options struct {
	Name        string
	Capacity    int           // default 10,000
	Workers     int           // default 4
	ItemTimeout time.Duration // default 30 s
	MaxAttempts int           // default 5; then the item is dead-lettered
	RetryDelay  time.Duration // first retry delay, doubling (default 1 s, at most MaxRetryDelay)
	// StuckAfter: the queue is stuck when its oldest item has not moved this long, or
	// when items have waited this long and none completed meanwhile (handlers that time
	// out and are retried make no progress either). Default 1 min: the default
	// queue-stuck policy clears items older than 1m, and a chat message unanswered for a
	// minute with nothing completing is an incident.
	StuckAfter time.Duration
	Handler    Handler
	// Complete, if set, runs in the transaction that removes a processed item: effects
	// written there happen exactly once, even across a kill -9.
	Complete func(ctx context.Context, tx *store.Tx, it Item) error
	// DeadLettered, if set, runs in the transaction that moves an item to the
	// dead-letter table (after its last attempt, a permanent failure, or Clear), with the
	// reason: like Complete, effects written there happen exactly once.
	DeadLettered func(ctx context.Context, tx *store.Tx, it Item, reason string) error
	// Group names a top-level string field of the payload (e.g. "chat"): items with the
	// same value are processed one at a time, in id order, like the message groups of
	// a FIFO queue — a later item waits while an earlier one is retried. "" keeps the
	// plain order (the oldest ready item first).
	Group string
	// Blocked reports whether what the handler needs is down (the WhatsApp connection
	// for the outbound queue). While it is, waiting is expected, not stuck: the watchdog
	// reports no QUEUE_STUCK (whose default policy would dead-letter every message queued
	// during a routine disconnect); the outage has its own events and policies.
	Blocked func() bool
	Events  func(engine.Event) // QUEUE_*, HANDLER_* events; must not block
	// Audit receives the audit rows of handler panics (the daemon's audit writer, the
	// table's owner); nil writes them directly.
	Audit  func(store.AuditEntry)
	Logger *slog.Logger
}

// Queue is one durable queue. Open it, then Run it; it is safe for concurrent use.
type Queue struct {
	db   *store.DB
	opts Options

	notify  chan struct{}
	restart chan struct{}

	processed, failed atomic.Int64
	lastProgress      atomic.Int64 // unix nanos
	stuck, full       atomic.Bool
	unsyncedInserts   atomic.Bool // EnqueueUnsynced was used: claims wait for the disk
	// polling: an idle worker holds the poller's role (see idleWait). One poller per
	// queue instead of every worker: 100 WhatsApp sessions (200 queues, 500 workers)
	// idle made 2,000 empty claim transactions a second, 13% of a core.
	polling atomic.Bool

	// depth is at least the queue's depth, so that an enqueue needs no count (see
	// insert): the last count plus the items inserted since. Deleting lowers the depth
	// only, so it stays a bound.
	depthMu      sync.Mutex
	depth        int
	sinceCounted int
}

// recountEvery bounds how many inserts go without a count: items another process puts
// back (remedy deadletter replay) are counted at the latest then.
const recountEvery = 256

// Open prepares a queue on db. Items that were being processed when remedy stopped
// (killed, crashed) become ready again: their handler did not complete.
func Open(ctx context.Context, db *store.DB, opts Options) (*Queue, error) {
	if opts.Capacity <= 0 {
		opts.Capacity = 10_000
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.ItemTimeout <= 0 {
		opts.ItemTimeout = 30 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.StuckAfter <= 0 {
		// An item within its handler's time is not stuck: a queue whose handlers may
		// take 2 minutes (an LLM-backed bot) is not reported, nor cleared, at 1.
		opts.StuckAfter = max(DefaultStuckAfter, opts.ItemTimeout+opts.ItemTimeout/4)
	}
	if opts.Events == nil {
		opts.Events = func(engine.Event) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Handler == nil {
		return nil, fmt.Errorf("queue %s: no handler", opts.Name)
	}
	q := &Queue{db: db, opts: opts, notify: make(chan struct{}, 1), restart: make(chan struct{}, 1),
		sinceCounted: recountEvery} // the first insert counts what is queued already
	if _, err := db.Exec(ctx, `UPDATE queue_items SET state = 'ready', updated = ? WHERE queue = ? AND state = 'working'`,
		time.Now().UnixMilli(), opts.Name); err != nil {
		return nil, fmt.Errorf("queue %s: recover in-flight items: %w", opts.Name, err)
	}
	q.lastProgress.Store(time.Now().UnixNano())
	return q, nil
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.opts.Name }

// Wake makes the items waiting for a retry due now and wakes a worker: when what they
// waited for is back (the WhatsApp connection), waiting out the backoff only delays
// them. It runs in the background and never blocks the caller.
func (q *Queue) Wake() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		now := time.Now().UnixMilli()
		if _, err := q.db.Exec(ctx, `UPDATE queue_items SET available_at = ? WHERE queue = ? AND state = 'ready' AND available_at > ?`,
			now, q.opts.Name, now); err != nil {
			q.opts.Logger.Warn("queue wake", "queue", q.opts.Name, "error", err)
			return
		}
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}()
}

// Workers is the number of workers.
func (q *Queue) Workers() int { return q.opts.Workers }

func (q *Queue) emit(code, msg string, value float64) {
	q.opts.Events(engine.Event{Time: time.Now(), Code: code, Source: "queue",
		Labels: map[string]string{"queue": q.opts.Name}, Message: msg, Value: value})
}

// Enqueue stores a payload (any JSON-encodable value, or json.RawMessage) and wakes a
// worker. It fails with ErrFull at capacity, so the caller can keep the item elsewhere.
func (q *Queue) Enqueue(ctx context.Context, payload any) (int64, error) {
	return q.enqueue(ctx, payload, q.db.WithTx)
}

func (q *Queue) enqueue(ctx context.Context, payload any, withTx func(context.Context, func(context.Context, *store.Tx) error) error) (int64, error) {
	raw, ok := payload.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(payload)
		if err != nil {
			return 0, fmt.Errorf("queue %s: %w", q.opts.Name, err)
		}
		raw = b
	}
	var id int64
	err := withTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		id, err = q.insert(ctx, tx, raw)
		return err
	})
	if err != nil {
		return 0, q.enqueueFailed(err)
	}
	q.Notify()
	return id, nil
}

// EnqueueUnsynced is Enqueue returning once the item is committed, before it is on
// disk: it survives a crash of remedy, and a power cut once a later write or
// store.DB.Sync has put it there (commits reach the disk in order). For a caller that
// holds back its acknowledgement until then: the inbound queue's, whose receipt to
// WhatsApp leaves only after a Sync (daemon: whatsapp.Options.BeforeWrite), so that
// whatsmeow's one message loop does not wait for the disk at every message.
func (q *Queue) EnqueueUnsynced(ctx context.Context, payload any) (int64, error) {
	q.unsyncedInserts.Store(true) // before the commit: a worker may claim it at once
	return q.enqueue(ctx, payload, q.db.WithTxUnsynced)
}

// EnqueueTx stores a payload inside the caller's transaction (with the caller's own
// rows, so both are committed or neither); call Notify after the commit. It fails
// with ErrFull at capacity. Like every WithTx function it may run twice.
func (q *Queue) EnqueueTx(ctx context.Context, tx *store.Tx, payload any) (int64, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", q.opts.Name, err)
	}
	id, err := q.insert(ctx, tx, raw)
	if err != nil {
		return 0, q.enqueueFailed(err)
	}
	return id, nil
}

// Notify wakes a worker for an item committed with EnqueueTx.
func (q *Queue) Notify() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *Queue) enqueueFailed(err error) error {
	if errors.Is(err, ErrFull) {
		q.reportFull(1)
		return fmt.Errorf("queue %s: %w (%d items)", q.opts.Name, ErrFull, q.opts.Capacity)
	}
	return err
}

// insert adds an item in tx. The capacity is checked with a count of the queue only when
// the depth bound reaches it (or every recountEvery inserts): the count reads every
// item's index entry, and at a backlog of 5,000 it took 0.24 ms of each enqueue, in
// whatsmeow's one message loop.
func (q *Queue) insert(ctx context.Context, tx *store.Tx, raw []byte) (int64, error) {
	q.depthMu.Lock()
	defer q.depthMu.Unlock()
	if q.depth+1 >= q.opts.Capacity || q.sinceCounted >= recountEvery {
		var depth int
		if err := tx.Get(ctx, &depth, `SELECT count(*) FROM queue_items WHERE queue = ?`, q.opts.Name); err != nil {
			return 0, err
		}
		q.depth, q.sinceCounted = depth, 0
		if depth >= q.opts.Capacity {
			return 0, ErrFull
		}
	}
	// Counted before the commit: an insert rolled back (or run again) only makes the
	// bound larger.
	q.depth++
	q.sinceCounted++
	now := time.Now().UnixMilli()
	res, err := tx.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated) VALUES (?, ?, ?, ?)`,
		q.opts.Name, string(raw), now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (q *Queue) reportFull(fill float64) {
	if q.full.CompareAndSwap(false, true) {
		q.emit("QUEUE_FULL", fmt.Sprintf("%.0f%% of %d", fill*100, q.opts.Capacity), fill)
	}
}

// Run runs the workers until ctx ends. Clear restarts them.
func (q *Queue) Run(ctx context.Context) {
	for {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i := 0; i < q.opts.Workers; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); q.work(wctx) }()
		}
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return
		case <-q.restart:
			cancel()
			// A handler that ignores its context keeps its goroutine; the worker
			// around it has already moved on (see process), so this wait is short.
			wg.Wait()
			q.opts.Logger.Info("queue workers restarted", "queue", q.opts.Name)
		}
	}
}

func (q *Queue) work(ctx context.Context) {
	idle := time.NewTimer(0)
	defer idle.Stop()
	var done *Item // handled, to complete in the transaction of the next claim
	defer func() {
		if done != nil { // the workers stop: the outcome is recorded all the same
			octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			q.complete(octx, *done)
		}
	}()
	woke := false // the last claim followed a wait
	for ctx.Err() == nil {
		it, ok, err := q.claim(ctx, done)
		if err != nil && ctx.Err() == nil {
			q.opts.Logger.Error("queue claim", "queue", q.opts.Name, "error", err)
		}
		if err == nil {
			done = nil
		}
		if ok {
			if woke {
				// There may be more (retries falling due together, one wake for a
				// batch): another worker looks too, and so on while items are found.
				q.Notify()
				woke = false
			}
			if q.process(ctx, it) {
				done = &it
			}
			continue
		}
		woke = q.idleWait(ctx, idle)
	}
}

// pollEvery is how often an idle queue looks for items that fell due without an
// enqueue's wake (retries, postponed items, items another process put back).
const pollEvery = 250 * time.Millisecond

// idleWait waits, with nothing ready, for an enqueue's wake or, for one worker of the
// queue at a time (the poller), for the poll interval. A worker that is not the poller
// looks every second whether the role is free (its holder may be busy with an item),
// claiming nothing meanwhile. It reports whether to claim (false: ctx ended).
func (q *Queue) idleWait(ctx context.Context, idle *time.Timer) bool {
	for {
		poller := q.polling.CompareAndSwap(false, true)
		if poller {
			idle.Reset(pollEvery)
		} else {
			idle.Reset(time.Second)
		}
		select {
		case <-ctx.Done():
			if poller {
				q.polling.Store(false)
			}
			return false
		case <-q.notify:
			if poller {
				q.polling.Store(false)
			}
			return true
		case <-idle.C:
			if poller {
				q.polling.Store(false)
				return true
			}
		}
	}
}

// claim takes the next ready item and marks it working, in one transaction. If done is
// not nil, that handled item is completed in the same transaction: one commit per
// message instead of two (a commit was a third of the queue's cost at 1,000 messages/s).
func (q *Queue) claim(ctx context.Context, done *Item) (Item, bool, error) {
	var it Item
	found := false
	// Without Complete the claim changes only the queue's own rows: it need not wait
	// for the disk (store.WithTxUnsynced). A power cut that undoes it hands the item
	// out again under the same id, at least once as after a crash mid-handler.
	// Complete's writes are as durable as any other write. And an item put in without
	// waiting (EnqueueUnsynced) must be on disk before its id goes to the handler: a
	// power cut could give the id to another item, which a handler that keys on the
	// delivery id would take for one it saw (the synced claim carries the insert there).
	withTx := q.db.WithTx
	if q.opts.Complete == nil && !q.unsyncedInserts.Load() {
		withTx = q.db.WithTxUnsynced
	}
	err := withTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		found = false
		if done != nil {
			if err := q.completeTx(ctx, tx, *done); err != nil {
				return err
			}
		}
		var row struct {
			ID       int64  `db:"id"`
			Payload  string `db:"payload"`
			Attempts int    `db:"attempts"`
			Enqueued int64  `db:"enqueued"`
		}
		now := time.Now().UnixMilli()
		next, args := q.next(now)
		err := tx.Get(ctx, &row, `UPDATE queue_items SET state = 'working', attempts = attempts + 1, updated = ?
			WHERE id = (`+next+`) RETURNING id, payload, attempts, enqueued`, append([]any{now}, args...)...)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		it = Item{ID: row.ID, Queue: q.opts.Name, Payload: json.RawMessage(row.Payload), Attempts: row.Attempts,
			Enqueued: time.UnixMilli(row.Enqueued)}
		return nil
	})
	if err == nil && done != nil {
		q.completed()
	}
	return it, found, err
}

// process runs the handler with the per-item timeout and panic recovery. A handler that
// does not return by the timeout is abandoned: its item stays "working" until the
// watchdog reports the queue stuck and CLEAR_QUEUE dead-letters it. It reports true for
// an item handled without error, which the caller completes (see claim).
func (q *Queue) process(ctx context.Context, it Item) bool {
	hctx, cancel := context.WithTimeout(ctx, q.opts.ItemTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				stack := string(debug.Stack())
				q.emit("HANDLER_PANIC", fmt.Sprintf("item %d: panic: %v", it.ID, p), 0)
				q.auditPanic(it, p, stack)
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- q.opts.Handler(hctx, it)
	}()
	var err error
	select {
	case err = <-done:
	case <-hctx.Done():
		select {
		case err = <-done: // it did return, just in time
		case <-time.After(time.Second):
			q.opts.Logger.Warn("handler abandoned", "queue", q.opts.Name, "item", it.ID, "timeout", q.opts.ItemTimeout)
			return false
		}
	}
	if err == nil {
		return true
	}
	// The outcome is recorded even if the workers are being restarted.
	octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer ocancel()
	if d, ok := later(err); ok {
		q.postpone(octx, it, d)
		return false
	}
	q.failed.Add(1)
	q.emit("HANDLER_ERROR", fmt.Sprintf("item %d attempt %d: %v", it.ID, it.Attempts, err), 0)
	q.retryOrDeadLetter(octx, it, err)
	return false
}

// complete removes a handled item in a transaction of its own.
func (q *Queue) complete(ctx context.Context, it Item) {
	err := q.db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error { return q.completeTx(ctx, tx, it) })
	if err != nil {
		q.opts.Logger.Error("queue complete", "queue", q.opts.Name, "item", it.ID, "error", err)
		return
	}
	q.completed()
}

func (q *Queue) completeTx(ctx context.Context, tx *store.Tx, it Item) error {
	res, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE id = ? AND state = 'working'`, it.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // cleared to the dead-letter table meanwhile: it stays there
	}
	if q.opts.Complete != nil {
		return q.opts.Complete(ctx, tx, it)
	}
	return nil
}

func (q *Queue) completed() {
	q.processed.Add(1)
	q.lastProgress.Store(time.Now().UnixNano())
}

func (q *Queue) retryOrDeadLetter(ctx context.Context, it Item, cause error) {
	if permanent(cause) || it.Attempts >= q.opts.MaxAttempts {
		reason := fmt.Sprintf("failed %d times: %v", it.Attempts, cause)
		if permanent(cause) {
			reason = cause.Error()
		}
		err := q.db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
			return q.deadLetter(ctx, tx, reason,
				`id = ? AND state = 'working'`, it.ID)
		})
		if err != nil {
			q.opts.Logger.Error("dead-letter", "queue", q.opts.Name, "item", it.ID, "error", err)
			return
		}
		q.emit("QUEUE_DEAD_LETTER", fmt.Sprintf("item %d moved to the dead-letter table after %d attempts: %v", it.ID, it.Attempts, cause), 1)
		return
	}
	delay := q.opts.RetryDelay << (it.Attempts - 1)
	var ra *RetryAfterError
	if errors.As(cause, &ra) {
		delay = max(delay, ra.After) // the handler said when it will be back
	}
	delay = min(delay, MaxRetryDelay)
	now := time.Now()
	if _, err := q.db.Exec(ctx, `UPDATE queue_items SET state = 'ready', updated = ?, available_at = ?, last_error = ?
		WHERE id = ? AND state = 'working'`, now.UnixMilli(), now.Add(delay).UnixMilli(), cause.Error(), it.ID); err != nil {
		q.opts.Logger.Error("queue retry", "queue", q.opts.Name, "item", it.ID, "error", err)
	}
}

func (q *Queue) auditPanic(it Item, p any, stack string) {
	e := store.AuditEntry{Time: time.Now(), Instance: q.opts.Name, Action: "HANDLER", Outcome: "panic",
		Params: map[string]string{"item": fmt.Sprint(it.ID)}, Error: fmt.Sprint(p), Output: stack}
	if q.opts.Audit != nil {
		q.opts.Audit(e)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = q.db.InsertAudit(ctx, []store.AuditEntry{e})
}

// deadLetter moves the queue_items rows matching where (with its args) to dead_letters
// with a reason, telling Options.DeadLettered of each first.
func (q *Queue) deadLetter(ctx context.Context, tx *store.Tx, reason, where string, args ...any) error {
	if q.opts.DeadLettered != nil {
		var rows []struct {
			ID       int64  `db:"id"`
			Payload  string `db:"payload"`
			Attempts int    `db:"attempts"`
			Enqueued int64  `db:"enqueued"`
		}
		if err := tx.Select(ctx, &rows, `SELECT id, payload, attempts, enqueued FROM queue_items WHERE `+where, args...); err != nil {
			return err
		}
		for _, r := range rows {
			it := Item{ID: r.ID, Queue: q.opts.Name, Payload: json.RawMessage(r.Payload), Attempts: r.Attempts, Enqueued: time.UnixMilli(r.Enqueued)}
			if err := q.opts.DeadLettered(ctx, tx, it, reason); err != nil {
				return err
			}
		}
	}
	return moveToDeadLetters(ctx, tx, reason, where, args...)
}

func moveToDeadLetters(ctx context.Context, tx *store.Tx, reason, where string, args ...any) error {
	now := time.Now().UnixMilli()
	if _, err := tx.Exec(ctx, `INSERT INTO dead_letters(queue, item_id, payload, reason, attempts, enqueued, dead_at)
		SELECT queue, id, payload, ?, attempts, enqueued, ? FROM queue_items WHERE `+where,
		append([]any{reason, now}, args...)...); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE `+where, args...)
	return err
}

// Clear moves the items not updated within olderThan (working or ready) to the
// dead-letter table with the reason, and restarts the workers: the CLEAR_QUEUE
// recovery. It returns how many items it moved.
func (q *Queue) Clear(ctx context.Context, olderThan time.Duration, reason string) (int, error) {
	// Age counts from enqueueing: an item retried every item_timeout has been waiting
	// all along, though each attempt touched it (before, such items never qualified).
	const where = `queue = ? AND enqueued <= ?`
	args := []any{q.opts.Name, time.Now().Add(-olderThan).UnixMilli()}
	var n int
	err := q.db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.Get(ctx, &n, `SELECT count(*) FROM queue_items WHERE `+where, args...); err != nil {
			return err
		}
		return q.deadLetter(ctx, tx, reason, where, args...)
	})
	if err != nil {
		return 0, err
	}
	select {
	case q.restart <- struct{}{}:
	default:
	}
	q.lastProgress.Store(time.Now().UnixNano())
	if n > 0 {
		q.emit("QUEUE_DEAD_LETTER", fmt.Sprintf("%d item(s) moved to the dead-letter table: %s", n, reason), float64(n))
	}
	return n, nil
}
