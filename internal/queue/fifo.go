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
	// state index instead, every ready item would be checked before the sort. The group
	// expression is the index's, word for word, and never fails on a damaged payload.
	field := strings.ReplaceAll(q.opts.Group, "'", "")
	group := func(alias string) string {
		return "(CASE WHEN json_valid(" + alias + ".payload) THEN json_extract(" + alias + ".payload, '$." + field + "') END)"
	}
	return `SELECT i.id FROM queue_items AS i NOT INDEXED WHERE i.queue = ? AND i.state = 'ready' AND i.available_at <= ?
		AND NOT EXISTS (SELECT 1 FROM queue_items AS e WHERE e.queue = i.queue AND ` + group("e") + ` = ` + group("i") + ` AND e.id < i.id)
		AND NOT EXISTS (SELECT 1 FROM queue_items AS e WHERE e.queue = i.queue AND ` + group("i") + ` IS NULL
			AND ` + group("e") + ` IS NULL AND e.id < i.id)
		ORDER BY i.id LIMIT 1`
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
