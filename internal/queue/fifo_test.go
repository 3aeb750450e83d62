package queue

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/internal/store"
)

// A grouped claim looks up earlier items of the group through the index, never by
// scanning the queue for each candidate (a 2,000-item backlog made every claim take
// about a second before the index).
func TestGroupedClaimUsesTheIndex(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
