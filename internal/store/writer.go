package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOverloaded is a Commit refused because the writer already holds as many rows as its
// limit: the caller should answer "try again later" (HTTP 429) rather than wait.
var ErrOverloaded = errors.New("too many writes waiting")

// WriterOptions configure a Writer.
type WriterOptions[T any] struct {
	// Name labels the writer in logs, metrics and STORE_BACKLOG events ("journal",
	// "audit", "samples", …).
	Name string
	// Write stores one batch in one transaction, in order; it must not keep the slice.
	Write func(ctx context.Context, batch []T) error
	// MaxBatch is the most rows in one transaction (default 500).
	MaxBatch int
	// Limit is the most rows kept in memory (default 100,000). Past it a Shed writer
	// drops its oldest rows (counted in Shed()); another moves new rows to its Spool,
	// and only without a spool, or with the spool full, drops them (counted in Lost()).
	Limit int
	Shed  bool
	// Spool holds the rows past Limit (nil: none).
	Spool *Spool[T]
	// Timeout bounds one write (default 5 s); a failed write is retried after 100 ms,
	// doubling to 1 s, for as long as it takes.
	Timeout time.Duration
	// Backlog is told when rows start waiting after a failed write (err set) and when the
	// backlog is written (rows 0, err nil). It must not block.
	Backlog func(name string, rows int, err error)
	Logger  *slog.Logger
}

// Writer is the one owner of a table (or of tables written together): callers hand it
// rows and go on (Add) or wait until they are on disk (Commit); its Run goroutine writes
// them in batches, in order, and keeps every row whose write failed until a retry
// succeeds. Rows waiting are its backlog (Len). Create it with NewWriter; run it with
// Run; it is safe for concurrent use.
type Writer[T any] struct {
	opts WriterOptions[T]
	wake chan struct{}

	mu      sync.Mutex
	items   []entry[T]
	spooled bool // rows are in the spool: new rows go there too, to stay in order
	stopped bool

	shed, lost atomic.Int64
	backlog    atomic.Bool // a write failed and rows wait
}

type entry[T any] struct {
	v    T
	at   time.Time
	done chan error      // nil: kept until written; else Commit's answer
	ctx  context.Context // Commit's; its end withdraws the row if not yet written
}

// NewWriter returns a writer; nothing is written until Run.
func NewWriter[T any](opts WriterOptions[T]) *Writer[T] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	if opts.Limit <= 0 {
		opts.Limit = 100_000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Rows left in the spool by the last run go first.
	return &Writer[T]{opts: opts, wake: make(chan struct{}, 1), spooled: opts.Spool != nil && opts.Spool.Len() > 0}
}

// Add hands rows to the writer; it never blocks.
func (w *Writer[T]) Add(vs ...T) {
	if len(vs) == 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	for _, v := range vs {
		w.keep(entry[T]{v: v, at: now})
	}
	w.mu.Unlock()
	w.poke()
}

// keep queues one row within the limit (w.mu held).
func (w *Writer[T]) keep(e entry[T]) {
	if !w.spooled && len(w.items) < w.opts.Limit {
		w.items = append(w.items, e)
		return
	}
	if w.opts.Shed {
		for i, x := range w.items {
			if x.done == nil { // a waiting Commit is answered, never shed
				w.items = append(w.items[:i], w.items[i+1:]...)
				w.shed.Add(1)
				break
			}
		}
		w.items = append(w.items, e)
		return
	}
	if w.opts.Spool != nil {
		if err := w.opts.Spool.Append(e.v); err == nil {
			w.spooled = true
			return
		}
	}
	w.lost.Add(1)
	w.opts.Logger.Error("row lost: the writer's memory and spool are full", "writer", w.opts.Name)
}

// Commit writes rows and returns once they are committed, sharing the transaction with
// every other row waiting (group commit). It returns ErrOverloaded at once when the
// writer holds Limit rows already, ctx's error if ctx ends before the rows are written
// (they are then withdrawn, unless already being written: a write in progress is bounded
// by the earliest deadline among its waiters), and the store's error if the write fails
// (the rows are withdrawn: the caller was told they are not stored).
func (w *Writer[T]) Commit(ctx context.Context, vs ...T) error {
	if len(vs) == 0 {
		return nil
	}
	done := make(chan error, 1)
	now := time.Now()
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return ErrOverloaded
	}
	if len(w.items)+len(vs) > w.opts.Limit {
		w.mu.Unlock()
		return ErrOverloaded
	}
	for i, v := range vs {
		e := entry[T]{v: v, at: now, ctx: ctx}
		if i == len(vs)-1 {
			e.done = done // the last row answers for all: they are written in one batch or withdrawn together
		}
		w.items = append(w.items, e)
	}
	w.mu.Unlock()
	w.poke()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // withdrawn at the next flush, or being written under ctx's deadline
	}
}

func (w *Writer[T]) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Len is the number of rows waiting in memory and in the spool.
func (w *Writer[T]) Len() int {
	w.mu.Lock()
	n := len(w.items)
	w.mu.Unlock()
	if w.opts.Spool != nil {
		n += w.opts.Spool.Len()
	}
	return n
}

// Shed is the number of rows dropped to keep memory bounded (Shed writers).
func (w *Writer[T]) Shed() int64 { return w.shed.Load() }

// Lost is the number of rows dropped with memory and spool full.
func (w *Writer[T]) Lost() int64 { return w.lost.Load() }

// Failing reports whether rows wait after a failed write.
func (w *Writer[T]) Failing() bool { return w.backlog.Load() }

// Run writes until ctx ends, then until stop's rows are written or drain ends: the
// shutdown gives it the time to flush everything handed to it before the databases close.
// Rows still unwritten then go to the spool (if any) and are counted as lost otherwise.
func (w *Writer[T]) Run(ctx context.Context, drain time.Duration) error {
	delay := time.Duration(0)
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return w.final(drain)
			case <-t.C:
			}
		}
		if w.flush(ctx) {
			delay = 0
			select {
			case <-ctx.Done():
				return w.final(drain)
			case <-w.wake:
			}
			continue
		}
		if ctx.Err() != nil {
			return w.final(drain)
		}
		delay = min(max(2*delay, 100*time.Millisecond), time.Second)
	}
}

// final writes what is left within drain.
func (w *Writer[T]) final(drain time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	for w.Len() > 0 && ctx.Err() == nil {
		if !w.flush(ctx) {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	// What memory holds is older than what the spool holds: spool it in front.
	var later []T
	if w.opts.Spool != nil {
		later, _ = w.opts.Spool.Take()
	}
	left := 0
	for _, e := range w.items {
		if e.done != nil {
			e.done <- ErrOverloaded
		}
		if e.ctx != nil {
			continue
		}
		if w.opts.Spool != nil && w.opts.Spool.Append(e.v) == nil {
			continue
		}
		left++
	}
	for _, v := range later {
		if w.opts.Spool.Append(v) != nil {
			left++
		}
	}
	w.items = nil
	if left > 0 {
		w.lost.Add(int64(left))
		return errors.New(w.opts.Name + ": " + itoa(left) + " rows not written at shutdown")
	}
	return nil
}

// flush writes the head of the queue once; false if a write failed and rows wait.
func (w *Writer[T]) flush(ctx context.Context) bool {
	for {
		w.mu.Lock()
		w.withdraw()
		if len(w.items) == 0 && w.spooled {
			w.unspool()
		}
		n := min(len(w.items), w.opts.MaxBatch)
		// A Commit's rows go in one batch: extend to the end of the last one taken.
		for n < len(w.items) && n > 0 && w.items[n-1].ctx != nil && w.items[n-1].done == nil {
			n++
		}
		batch := append([]entry[T](nil), w.items[:n]...)
		w.mu.Unlock()
		if n == 0 {
			if w.backlog.CompareAndSwap(true, false) && w.opts.Backlog != nil {
				w.opts.Backlog(w.opts.Name, 0, nil)
			}
			return true
		}
		deadline := time.Now().Add(w.opts.Timeout)
		vs := make([]T, len(batch))
		for i, e := range batch {
			vs[i] = e.v
			if e.ctx != nil {
				if dl, ok := e.ctx.Deadline(); ok && dl.Before(deadline) {
					deadline = dl
				}
			}
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err := w.opts.Write(wctx, vs)
		cancel()
		w.mu.Lock()
		// The batch is still the head: only flush removes rows from the front (withdraw
		// and shedding skip nothing taken here, as Run is the only flusher).
		w.items = w.items[min(len(batch), len(w.items)):]
		// A commit whose sync failed was made: writing the batch again would store its
		// rows twice. Its Commit callers hear the error (not known to be on disk).
		committed := errors.Is(err, errSync)
		if err != nil && !committed {
			var kept []entry[T]
			for _, e := range batch {
				if e.ctx == nil {
					kept = append(kept, e)
				} else if e.done != nil {
					e.done <- err
				}
			}
			w.items = append(kept, w.items...)
		} else {
			for _, e := range batch {
				if e.done != nil {
					e.done <- err
				}
			}
		}
		rows := len(w.items)
		w.mu.Unlock()
		if committed {
			w.opts.Logger.Warn("rows committed, but their sync to disk failed; not written again", "writer", w.opts.Name, "rows", len(batch), "error", err)
			continue
		}
		if err != nil {
			if rows == 0 {
				w.opts.Logger.Warn("commit failed; its callers were told", "writer", w.opts.Name, "error", err)
			}
			if rows > 0 {
				first := !w.backlog.Swap(true)
				w.opts.Logger.Warn("write failed; rows kept for retry", "writer", w.opts.Name, "rows", rows, "error", err)
				if first && w.opts.Backlog != nil {
					w.opts.Backlog(w.opts.Name, rows, err)
				}
			}
			return false
		}
	}
}

// withdraw drops the rows of Commits whose caller gave up (w.mu held).
func (w *Writer[T]) withdraw() {
	out := w.items[:0]
	for i := 0; i < len(w.items); i++ {
		e := w.items[i]
		if e.ctx != nil && e.ctx.Err() != nil {
			continue
		}
		out = append(out, e)
	}
	for i := len(out); i < len(w.items); i++ {
		w.items[i] = entry[T]{} // let the withdrawn rows be collected
	}
	w.items = out
}

// unspool moves the spool's rows into memory (w.mu held).
func (w *Writer[T]) unspool() {
	vs, err := w.opts.Spool.Take()
	if err != nil {
		w.opts.Logger.Error("reading the spool", "writer", w.opts.Name, "error", err)
		return
	}
	now := time.Now()
	for _, v := range vs {
		w.items = append(w.items, entry[T]{v: v, at: now})
	}
	w.spooled = false
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
