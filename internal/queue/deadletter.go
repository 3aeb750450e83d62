package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// DeadLetter is an item taken out of its queue, with why.
type DeadLetter struct {
	ID       int64  `db:"id"`
	Queue    string `db:"queue"`
	ItemID   int64  `db:"item_id"`
	Payload  string `db:"payload"`
	Reason   string `db:"reason"`
	Attempts int    `db:"attempts"`
	Enqueued int64  `db:"enqueued"`
	DeadAt   int64  `db:"dead_at"`
	Replayed int64  `db:"replayed"`
}

// DeadLetters lists the dead letters of a queue ("" for all), oldest first; with
// pending only those not yet replayed.
func DeadLetters(ctx context.Context, db *store.DB, queue string, pending bool) ([]DeadLetter, error) {
	var out []DeadLetter
	q := `SELECT id, queue, item_id, payload, reason, attempts, enqueued, dead_at, replayed FROM dead_letters
		WHERE (? = '' OR queue = ?) AND (? = 0 OR replayed = 0) ORDER BY id`
	p := 0
	if pending {
		p = 1
	}
	err := db.Select(ctx, &out, q, queue, queue, p)
	return out, err
}

// Replay puts dead letters back into their queues as new items (ids empty: every pending
// one of the queue). The dead-letter rows stay, marked replayed. It returns how many it
// put back.
func Replay(ctx context.Context, db *store.DB, queue string, ids []int64) (int, error) {
	var n int
	err := db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		n = 0
		var rows []DeadLetter
		if err := tx.Select(ctx, &rows, `SELECT id, queue, item_id, payload, reason, attempts, enqueued, dead_at, replayed
			FROM dead_letters WHERE replayed = 0 AND (? = '' OR queue = ?) ORDER BY id`, queue, queue); err != nil {
			return err
		}
		want := map[int64]bool{}
		for _, id := range ids {
			want[id] = true
		}
		now := time.Now().UnixMilli()
		for _, r := range rows {
			if len(ids) > 0 && !want[r.ID] {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated) VALUES (?, ?, ?, ?)`,
				r.Queue, r.Payload, r.Enqueued, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE dead_letters SET replayed = ? WHERE id = ?`, now, r.ID); err != nil {
				return err
			}
			delete(want, r.ID)
			n++
		}
		if len(want) > 0 {
			return fmt.Errorf("no pending dead letter with id %v", keys(want))
		}
		return nil
	})
	return n, err
}

func keys(m map[int64]bool) []int64 {
	var out []int64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Manager holds the queues by name; it satisfies the CLEAR_QUEUE action's interface.
type Manager struct {
	queues map[string]*Queue
}

// NewManager returns a manager of the given queues.
func NewManager(qs ...*Queue) *Manager {
	m := &Manager{queues: map[string]*Queue{}}
	for _, q := range qs {
		m.queues[q.Name()] = q
	}
	return m
}

// Get returns a queue by name.
func (m *Manager) Get(name string) (*Queue, bool) { q, ok := m.queues[name]; return q, ok }

// Has reports whether the manager has a queue of that name.
func (m *Manager) Has(name string) bool { _, ok := m.queues[name]; return ok }

// Clear is CLEAR_QUEUE for the named queue.
func (m *Manager) Clear(ctx context.Context, queue string, olderThan time.Duration, reason string) (int, error) {
	q, ok := m.queues[queue]
	if !ok {
		return 0, fmt.Errorf("no queue named %q", queue)
	}
	return q.Clear(ctx, olderThan, reason)
}
