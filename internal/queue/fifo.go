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
	path := "'$." + strings.ReplaceAll(q.opts.Group, "'", "") + "'"
	return `SELECT i.id FROM queue_items i WHERE i.queue = ? AND i.state = 'ready' AND i.available_at <= ?
		AND NOT EXISTS (SELECT 1 FROM queue_items e WHERE e.queue = i.queue AND e.id < i.id
			AND json_extract(e.payload, ` + path + `) IS json_extract(i.payload, ` + path + `))
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
