package queue

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/remedy-run/remedy/internal/store"
)

// BenchmarkBacklog5000: one op is an enqueue and a claim that completes the item before
// it, on a queue holding 5,000 items (the inbound queue after a burst). Before issue 27
// both read every item: the enqueue's capacity count and the claim's sort.
func BenchmarkBacklog5000(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(b.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	q, err := Open(ctx, db, Options{Name: "inbound", Handler: func(context.Context, Item) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.WithTx(ctx, func(ctx context.Context, tx *store.Tx) error {
		for range 5000 {
			if _, err := tx.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated) VALUES ('inbound', '{"text":"backlog"}', 0, 0)`); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var done *Item
	for b.Loop() {
		if _, err := q.Enqueue(ctx, map[string]string{"text": "hello"}); err != nil {
			b.Fatal(err)
		}
		it, ok, err := q.claim(ctx, done)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		done = &it
	}
}
