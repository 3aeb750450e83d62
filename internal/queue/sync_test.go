package queue

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// A queue without Complete (the inbound one) claims and completes without waiting for
// the disk: those transactions change only its own rows, and one that a power cut
// undoes hands the item out again under the same id (at least once, as after a crash
// mid-handler; a crash of remedy itself loses no commit). Its enqueues wait, as every
// answered write does (the message's receipt goes to WhatsApp after it). A queue with
// Complete waits at the claim that completes: Complete's writes are as durable as any.
func TestOnlyClaimsWithCompleteWaitForTheDisk(t *testing.T) {
	for _, withComplete := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			db := openDB(t)
			if _, err := db.Exec(ctx, `CREATE TABLE processed_test (item INTEGER NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			o := Options{Name: "inbound", Workers: 4, Handler: func(context.Context, Item) error { return nil }}
			if withComplete {
				o.Complete = processedHook
			}
			q, err := Open(ctx, db, o)
			if err != nil {
				t.Fatal(err)
			}
			before := db.Stats().Syncs
			for i := range 20 {
				if _, err := q.Enqueue(ctx, fmt.Sprint("msg ", i)); err != nil {
					t.Fatal(err)
				}
			}
			enqueued := db.Stats().Syncs
			if enqueued-before != 20 {
				t.Fatalf("20 enqueues one after another: %d syncs, want 20", enqueued-before)
			}
			go q.Run(ctx)
			time.Sleep(time.Second) // past the workers' idle poll
			synctest.Wait()
			if st := stats(t, q); st.Depth != 0 || st.Processed != 20 {
				t.Fatalf("depth %d, processed %d", st.Depth, st.Processed)
			}
			claims := db.Stats().Syncs - enqueued
			if withComplete && claims == 0 || !withComplete && claims != 0 {
				t.Fatalf("with Complete %v: the claims made %d syncs", withComplete, claims)
			}
		})
	}
}

// EnqueueUnsynced returns at the commit, without a sync; store.DB.Sync then puts it on
// disk (the inbound queue's receipts wait for that at the socket).
func TestEnqueueUnsyncedLeavesTheSyncToTheCaller(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	q, err := Open(ctx, db, Options{Name: "inbound", Handler: func(context.Context, Item) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	before := db.Stats().Syncs
	for i := range 10 {
		if _, err := q.EnqueueUnsynced(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Stats().Syncs - before; n != 0 {
		t.Fatalf("10 unsynced enqueues made %d syncs", n)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if n, st := db.Stats().Syncs-before, stats(t, q); n != 1 || st.Depth != 10 {
		t.Fatalf("after Sync: %d syncs, depth %d; want 1 and 10", n, st.Depth)
	}
}

// An item put in without waiting for the disk reaches the handler only once it is on
// disk: its id is the delivery id a handler may key on, and a power cut could give an
// id that never reached the disk to another item.
func TestUnsyncedItemReachesTheHandlerOnlyOnDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		db := openDB(t)
		var atHandler []int64
		q, err := Open(ctx, db, Options{Name: "inbound", Workers: 1, Handler: func(context.Context, Item) error {
			atHandler = append(atHandler, db.Stats().Syncs)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		go q.Run(ctx)
		synctest.Wait()
		for i := range 3 {
			before := db.Stats().Syncs
			if _, err := q.EnqueueUnsynced(ctx, i); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if len(atHandler) != i+1 || atHandler[i] <= before {
				t.Fatalf("item %d at the handler with %v syncs made, %d before its enqueue", i, atHandler, before)
			}
		}
	})
}
