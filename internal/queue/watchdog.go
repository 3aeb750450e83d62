package queue

import (
	"context"
	"fmt"
	"time"
)

// Stats describe a queue for the monitor.
type Stats struct {
	Depth     int
	Oldest    time.Duration // how long the oldest due item has not moved
	Waiting   time.Duration // how long the longest-waiting item has been queued
	Fill      float64       // Depth / Capacity
	Processed int64
	Failed    int64
}

// Stats reads the queue's depth and the age of its oldest due item.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var row struct {
		Depth    int   `db:"depth"`
		Oldest   int64 `db:"oldest"`
		Enqueued int64 `db:"enqueued"`
	}
	now := time.Now().UnixMilli()
	// Due items only; in a grouped queue only the first of each group, the one that can
	// move (the others wait for it by design).
	err := q.db.Get(ctx, &row, `SELECT count(*) AS depth,
		coalesce(min(CASE WHEN available_at <= ? AND `+q.head("q")+` THEN updated END), ?) AS oldest,
		coalesce(min(enqueued), ?) AS enqueued
		FROM queue_items AS q WHERE queue = ?`, now, now, now, q.opts.Name)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Depth: row.Depth, Oldest: time.Duration(now-row.Oldest) * time.Millisecond, Waiting: time.Duration(now-row.Enqueued) * time.Millisecond,
		Fill: float64(row.Depth) / float64(q.opts.Capacity), Processed: q.processed.Load(), Failed: q.failed.Load()}, nil
}

// Check reports QUEUE_STUCK when the oldest due item has not moved for StuckAfter, or
// items have waited StuckAfter with none completed meanwhile, and QUEUE_OK when it moves
// again; QUEUE_FULL when the queue is over 90% of its capacity. Each is reported once
// per episode.
func (q *Queue) Check(ctx context.Context) (Stats, error) {
	st, err := q.Stats(ctx)
	if err != nil {
		return st, err
	}
	if q.opts.Blocked != nil && q.opts.Blocked() {
		// Waiting for what the handler needs: not stuck, and the clock of progress
		// starts again when it is back.
		q.lastProgress.Store(time.Now().UnixNano())
		st.Oldest = 0
	}
	noProgress := min(st.Waiting, time.Since(time.Unix(0, q.lastProgress.Load())))
	isStuck := st.Depth > 0 && (st.Oldest >= q.opts.StuckAfter || noProgress >= q.opts.StuckAfter)
	switch {
	case isStuck && q.stuck.CompareAndSwap(false, true):
		since := time.Since(time.Unix(0, q.lastProgress.Load())).Round(time.Second)
		q.emit("QUEUE_STUCK", fmt.Sprintf("oldest item has not moved for %v; last progress %v ago; %d waiting",
			st.Oldest.Round(time.Second), since, st.Depth), st.Oldest.Seconds())
	case !isStuck && q.stuck.CompareAndSwap(true, false):
		q.emit("QUEUE_OK", "moving again", float64(st.Depth))
	}
	if st.Fill >= 0.9 {
		q.reportFull(st.Fill)
	} else if st.Fill < 0.8 {
		q.full.Store(false) // hysteresis: report again only after it drained a bit
	}
	return st, nil
}

// RunWatchdog checks every interval until ctx ends.
func (q *Queue) RunWatchdog(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = q.Check(ctx)
		}
	}
}
