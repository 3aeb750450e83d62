package queue

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// An idle queue polls with one worker, not all of them (issue 22: 100 WhatsApp
// sessions are 200 queues and 500 workers; each polling every 250 ms made 2,000 empty
// claim transactions a second, 13% of a core). An empty queue's poll is a read, not a
// claim: over an idle minute a queue of five workers makes no write transaction at all
// (its claims wait for the disk, Complete being set, so the syncs would count them),
// and an item still reaches a worker at once on its enqueue, or within a poll of the
// empty queue (1 s) when it falls due by time without a wake.
func TestIdleQueuePollsWithOneWorker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		got := make(chan string, 4)
		q, err := Open(context.Background(), db, Options{Name: "idle", Workers: 5,
			Handler:  func(_ context.Context, it Item) error { got <- text(it); return nil },
			Complete: func(context.Context, *store.Tx, Item) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { q.Run(ctx); close(stopped) }()
		defer func() { cancel(); <-stopped }()
		synctest.Wait()
		before := db.Stats().Syncs
		time.Sleep(time.Minute)
		synctest.Wait()
		polls := db.Stats().Syncs - before
		if polls != 0 {
			t.Fatalf("%d claim transactions in an idle minute, want none (an empty queue's poll reads)", polls)
		}
		start := time.Now()
		if _, err := q.Enqueue(ctx, "now"); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "now" || time.Since(start) != 0 {
			t.Fatalf("got %s after %v", s, time.Since(start))
		}
		// An item that falls due by time (as a retry does) is found by the poll.
		if _, err := db.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated, available_at, state) VALUES ('idle', '"later"', 0, 0, ?, 'ready')`,
			time.Now().Add(3*time.Second).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if s := <-got; s != "later" || time.Since(start) < 3*time.Second || time.Since(start) > 3*time.Second+time.Second {
			t.Fatalf("got %s after %v, want within 1s of 3s", s, time.Since(start))
		}
	})
}
