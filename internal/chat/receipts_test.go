package chat

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Receipts are written by their one owner, the pipeline's receipt writer: a burst
// larger than any buffer (here 5,000 receipts, one id each, given before the writer
// runs, then a read receipt for some of them) starts no goroutine, and every receipt
// given before Run returns is on disk when it does, the furthest status winning.
// (It failed when a burst beyond a 4,096-slot channel was written from goroutines
// nothing waited for, and the writer left the channel unread at shutdown.)
func TestReceiptsBurstWrittenByTheirOwner(t *testing.T) {
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
