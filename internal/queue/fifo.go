package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// next is the query for the id of the next item to claim at now (unix ms), and its
// arguments. With a Group, an item is claimable only when no earlier item of its group
// is still in the queue (ready, waiting for a retry, or being worked on).
func (q *Queue) next(now int64) (string, []any) {
	if q.opts.Group == "" {
		// The oldest due item: the first never tried (available_at 0, in id order in the
		// index: one lookup) or the first of those due after a retry (usually few),
		// whichever is older. "available_at <= now ORDER BY id" sorted every ready
		// item for each claim: with the backlog of BenchmarkMemory's burst, claims
		// were a tenth of the daemon's CPU and grew with the backlog.
		return `SELECT min(m) FROM (
			SELECT min(id) AS m FROM queue_items WHERE queue = ? AND state = 'ready' AND available_at = 0
			UNION ALL SELECT min(id) FROM queue_items WHERE queue = ? AND state = 'ready' AND available_at BETWEEN 1 AND ?)`,
			[]any{q.opts.Name, q.opts.Name, now}
	}
	// The scan goes in id order (NOT INDEXED: rowid order) and stops at the first item
	// whose group has nothing before it, usually the first ready one; the check per
	// candidate is one lookup in an index on (queue, group(payload), id), which a
	// grouped queue needs (the outbound queue's: migrations 0018/0019). Through the
	// state index instead, every ready item would be checked before the sort.
	return `SELECT i.id FROM queue_items AS i NOT INDEXED WHERE i.queue = ? AND i.state = 'ready' AND i.available_at <= ?
		AND ` + q.head("i") + ` ORDER BY i.id LIMIT 1`, []any{q.opts.Name, now}
}

// head is a condition on the queue_items row alias: it is the first of its group still
// queued (always true without a Group).
func (q *Queue) head(alias string) string {
	if q.opts.Group == "" {
		return "1"
	}
	g := q.groupExpr
	return `NOT EXISTS (SELECT 1 FROM queue_items AS e WHERE e.queue = ` + alias + `.queue AND ` + g("e") + ` = ` + g(alias) + ` AND e.id < ` + alias + `.id)
		AND NOT EXISTS (SELECT 1 FROM queue_items AS e WHERE e.queue = ` + alias + `.queue AND ` + g(alias) + ` IS NULL
			AND ` + g("e") + ` IS NULL AND e.id < ` + alias + `.id)`
}

// groupExpr is the group of the row alias: the index's expression, word for word, which
// never fails on a damaged payload.
func (q *Queue) groupExpr(alias string) string {
	field := strings.ReplaceAll(q.opts.Group, "'", "")
	return "(CASE WHEN json_valid(" + alias + ".payload) THEN json_extract(" + alias + ".payload, '$." + field + "') END)"
}

// laterError is a handler's "not now": the item was not tried.
type laterError struct{ after time.Duration }

func (e laterError) Error() string { return fmt.Sprintf("not now; again in %v", e.after) }

// Later is what a handler returns for an item it did not try yet and wants back after d
// (a rate limit's wait): the item is ready again then, the try is not counted, and no
// HANDLER_ERROR is reported. In a grouped queue the other groups move meanwhile — a
// handler that waited instead would hold up every group behind one.
func Later(d time.Duration) error { return laterError{after: max(d, time.Millisecond)} }

func later(err error) (time.Duration, bool) {
	var l laterError
	if errors.As(err, &l) {
		return l.after, true
	}
	return 0, false
}

// postpone makes an item ready again after d without counting the try.
func (q *Queue) postpone(ctx context.Context, it Item, d time.Duration) {
	now := time.Now()
	if _, err := q.db.Exec(ctx, `UPDATE queue_items SET state = 'ready', attempts = max(attempts - 1, 0), updated = ?, available_at = ?
		WHERE id = ? AND state = 'working'`, now.UnixMilli(), now.Add(d).UnixMilli(), it.ID); err != nil {
		q.opts.Logger.Error("queue postpone", "queue", q.opts.Name, "item", it.ID, "error", err)
	}
}

// permanentError marks a handler's failure that a retry cannot mend.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps a handler's error so that the item is dead-lettered now, with err as
// the reason, instead of being retried (a recipient that refuses the message, a payload
// that cannot be sent). A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func permanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
