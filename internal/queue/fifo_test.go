package queue

import (
	"context"
	"strings"
	"testing"
)

// A grouped claim looks up earlier items of the group through the index, never by
// scanning the queue for each candidate (a 2,000-item backlog made every claim take
// about a second before the index).
func TestGroupedClaimUsesTheIndex(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	q := &Queue{opts: Options{Name: "outbound", Group: "chat"}}
	var plan []struct {
		ID     int    `db:"id"`
		Parent int    `db:"parent"`
		NotUse int    `db:"notused"`
		Detail string `db:"detail"`
	}
	if err := db.Select(ctx, &plan, "EXPLAIN QUERY PLAN "+q.next(), "outbound", 0); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range plan {
		lines = append(lines, p.Detail)
	}
	got := strings.Join(lines, "\n")
	if strings.Count(got, "INDEX queue_items_chat (queue=? AND <expr>=? AND id<?)") != 2 || !strings.HasPrefix(got, "SCAN i") {
		t.Fatalf("plan:\n%s", got)
	}
}

// A damaged payload (not JSON) neither breaks the grouped claim nor blocks the others:
// it is its own "no group" item, claimed in turn.
func TestGroupedClaimSurvivesADamagedPayload(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	q, err := Open(ctx, db, Options{Name: "outbound", Group: "chat", Handler: func(context.Context, Item) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated) VALUES ('outbound', '{{', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, map[string]string{"chat": "a"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"{{", `{"chat":"a"}`} {
		it, ok, err := q.claim(ctx, nil)
		if err != nil || !ok || string(it.Payload) != want {
			t.Fatalf("claim: %s %v %v, want %s", it.Payload, ok, err, want)
		}
		q.complete(ctx, it)
	}
}
