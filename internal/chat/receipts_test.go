package chat

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Receipts are written by their one owner, the pipeline's receipt writer: a burst
// larger than any buffer (here 5,000 receipts, one id each, given before the writer
// runs, then a read receipt for some of them) starts no goroutine, and every receipt
// given before Run returns is on disk when it does, the furthest status winning.
// (It failed when a burst beyond a 4,096-slot channel was written from goroutines
// nothing waited for, and the writer left the channel unread at shutdown.)
func TestReceiptsBurstWrittenByTheirOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, db := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	const n = 5000
	now := time.Now().UnixMilli()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("3EB0%06d", i)
	}
	// One statement: n rows through SQLite's own loop stay cheap under -race.
	if _, err := db.Exec(ctx, `WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ? - 1)
		INSERT INTO outgoing(id, chat, status, created, updated, sent_at) SELECT printf('3EB0%06d', i), 'c', 'sent', ?, ?, ? FROM c`,
		n, now, now, now); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for _, id := range ids {
		p.Receipt([]string{id}, StatusDelivered, at)
	}
	p.Receipt(ids[:100], StatusRead, at)
	p.Receipt(ids[:100], StatusDelivered, at) // late: never goes back
	if p.receipts.len() != n {
		t.Fatalf("%d receipts pending, want %d", p.receipts.len(), n)
	}
	runCtx, cancel := context.WithCancel(ctx)
	cancel() // Run stops at once: what was given before must still be written
	p.Run(runCtx)
	var got []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := db.Select(ctx, &got, `SELECT status, count(*) AS n FROM outgoing GROUP BY status ORDER BY status`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[{delivered 4900} {read 100}]" {
		t.Fatalf("after Run: %v", got)
	}
}

// A receipt that cannot be written (the store refuses writes) is kept and written once
// the store is back; receipts arriving meanwhile join it, and the writer still stops
// when Run ends. (The retry once blocked the writer on its own wake-up slot, which a
// receipt given meanwhile had filled: Run never returned.)
func TestReceiptsKeptThroughAFailedWrite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p, db := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
		for _, id := range []string{"3EB0A", "3EB0B"} {
			if _, err := db.Exec(ctx, `INSERT INTO outgoing(id, chat, status, created, updated, sent_at) VALUES (?, 'c', 'sent', 1, 1, 1)`, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(ctx, `PRAGMA query_only = 1`); err != nil { // the writer is one connection
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() { p.Run(ctx); close(stopped) }()
		p.Receipt([]string{"3EB0A"}, StatusDelivered, time.Now())
		synctest.Wait()
		p.Receipt([]string{"3EB0B"}, StatusRead, time.Now())
		time.Sleep(3 * receiptRetry)
		synctest.Wait()
		if _, err := db.Exec(ctx, `PRAGMA query_only = 0`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * receiptRetry)
		synctest.Wait()
		var got []string
		if err := db.Select(ctx, &got, `SELECT status FROM outgoing ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[delivered read]" {
			t.Fatalf("after the fault: %v", got)
		}
		cancel()
		<-stopped
	})
}
