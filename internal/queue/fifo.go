package queue

import (
	"errors"
	"strings"
)

// next is the query for the id of the next item to claim (parameters: queue, now).
// With a Group, an item is claimable only when no earlier item of its group is still in
// the queue (ready, waiting for a retry, or being worked on).
func (q *Queue) next() string {
	if q.opts.Group == "" {
		return `SELECT id FROM queue_items WHERE queue = ? AND state = 'ready' AND available_at <= ? ORDER BY id LIMIT 1`
	}
	// The scan goes in id order (NOT INDEXED: rowid order) and stops at the first item
	// whose group has nothing before it, usually the first ready one; the check per
	// candidate is one lookup in an index on (queue, group(payload), id), which a
	// grouped queue needs (the outbound queue's: migrations 0018/0019). Through the
	// state index instead, every ready item would be checked before the sort.
	return `SELECT i.id FROM queue_items AS i NOT INDEXED WHERE i.queue = ? AND i.state = 'ready' AND i.available_at <= ?
		AND ` + q.head("i") + ` ORDER BY i.id LIMIT 1`
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
