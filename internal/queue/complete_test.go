package queue

import (
	"context"
	"testing"
	"testing/synctest"
)

// A handled item is completed in the transaction of its worker's next claim (one commit
// per item). The invariant: that claim happens even when there is no next item, and on
// shutdown, so a handled item never stays 'working' while the queue is idle or stopped
// (a restart would hand it out again), and its Complete hook runs exactly once. Checked
// without moving the clock: no poll interval may be needed for it.
func TestHandledItemIsCompletedWhenIdleAndOnStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		ctx := context.Background()
		if _, err := db.Exec(ctx, `CREATE TABLE processed_test (item INTEGER NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		q, _ := Open(ctx, db, Options{Name: "inbound", Workers: 3, Complete: processedHook,
			Handler: func(ctx context.Context, it Item) error {
				if text(it) == "last" {
					<-release // still running when the workers are told to stop
				}
				return nil
			}})
		working := func() (n int) {
			db.Get(ctx, &n, `SELECT count(*) FROM queue_items WHERE state = 'working'`)
			return n
		}
		hooked := func() (n int) {
			db.Get(ctx, &n, `SELECT count(*) FROM processed_test`)
			return n
		}
		rctx, cancel := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() { q.Run(rctx); close(stopped) }()
		synctest.Wait() // the workers are idle
		for i := 0; i < 5; i++ {
			if _, err := q.Enqueue(ctx, i); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if n, st := working(), stats(t, q); n != 0 || st.Depth != 0 || st.Processed != int64(i+1) || hooked() != i+1 {
				t.Fatalf("after item %d, idle: %d working, depth %d, processed %d, hook ran %d times", i, n, st.Depth, st.Processed, hooked())
			}
		}
		q.Enqueue(ctx, "last")
		synctest.Wait() // its handler is blocked
		cancel()
		close(release) // it returns after the stop: still completed
		<-stopped
		if n, st := working(), stats(t, q); n != 0 || st.Depth != 0 || st.Processed != 6 || hooked() != 6 {
			t.Fatalf("after stop: %d working, depth %d, processed %d, hook ran %d times", n, st.Depth, st.Processed, hooked())
		}
	})
}

func stats(t *testing.T, q *Queue) Stats {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
