package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// claimPlan is SQLite's plan for q's claim query, one step a line.
func claimPlan(t *testing.T, db *store.DB, q *Queue) string {
	t.Helper()
	var plan []struct {
		ID     int    `db:"id"`
		Parent int    `db:"parent"`
		NotUse int    `db:"notused"`
		Detail string `db:"detail"`
	}
	next, args := q.next(1)
	if err := db.Select(context.Background(), &plan, "EXPLAIN QUERY PLAN "+next, args...); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range plan {
		lines = append(lines, p.Detail)
	}
	return strings.Join(lines, "\n")
}

// A grouped claim looks up earlier items of the group through the index, never by
// scanning the queue for each candidate (a 2,000-item backlog made every claim take
// about a second before the index).
func TestGroupedClaimUsesTheIndex(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	q := &Queue{opts: Options{Name: "outbound", Group: "chat"}}
	got := claimPlan(t, db, q)
	if strings.Count(got, "INDEX queue_items_chat (queue=? AND <expr>=? AND id<?)") != 2 || !strings.HasPrefix(got, "SCAN i") {
		t.Fatalf("plan:\n%s", got)
	}
}

// An ungrouped claim finds the oldest due item through the index, without sorting the
// ready items (it did for every claim: 0.8 ms at a backlog of 5,000, a tenth of the
// daemon's CPU under BenchmarkMemory), and still takes them oldest first: over seeded
// random queues of new items, items waiting for a retry and items due after one, each
// claim is the due item with the lowest id.
func TestClaimTakesTheOldestDueItemThroughTheIndex(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	q, err := Open(ctx, db, Options{Name: "inbound", Handler: func(context.Context, Item) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if got := claimPlan(t, db, q); strings.Contains(got, "TEMP B-TREE") || !strings.Contains(got, "INDEX queue_items_next (queue=? AND state=? AND available_at=?)") {
		t.Fatalf("plan:\n%s", got)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 27))
	for round := range 20 {
		if _, err := db.Exec(ctx, `DELETE FROM queue_items`); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		var due []int64
		for range 1 + rng.IntN(30) {
			// Not due: a minute ahead at least (one due a millisecond after now fell
			// due before a slow machine's claim).
			at := []int64{0, 0, 0, now - 1 - rng.Int64N(1000), now + 60_000 + rng.Int64N(60_000)}[rng.IntN(5)]
			state := []string{"ready", "ready", "ready", "working"}[rng.IntN(4)]
			res, err := db.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated, available_at, state) VALUES ('inbound', '1', 0, 0, ?, ?)`, at, state)
			if err != nil {
				t.Fatal(err)
			}
			if id, _ := res.LastInsertId(); state == "ready" && at <= now {
				due = append(due, id)
			}
		}
		for _, want := range due { // inserted in id order
			it, ok, err := q.claim(ctx, nil)
			if err != nil || !ok || it.ID != want {
				t.Fatalf("seed %d round %d: claimed %d (%v %v), want %d of due %v", seed, round, it.ID, ok, err, want, due)
			}
		}
		if it, ok, _ := q.claim(ctx, nil); ok {
			t.Fatalf("seed %d round %d: claimed %d with nothing due", seed, round, it.ID)
		}
	}
}

// A damaged payload (not JSON) neither breaks the grouped claim nor blocks the others:
// it is its own "no group" item, claimed in turn.
func TestGroupedClaimSurvivesADamagedPayload(t *testing.T) {
	t.Parallel()
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

// While what the handler needs is down (Blocked), a queue that does not move is
// waiting, not stuck: no QUEUE_STUCK, whose default policy would dead-letter every
// message queued during a routine WhatsApp outage. Once it is back and the items still
// do not move, the queue is stuck as usual. In a grouped queue only a group's first
// item counts as due: the ones behind it wait by design.
func TestBlockedQueueIsNotStuck(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		rec := &recorder{}
		var down atomic.Bool
		down.Store(true)
		// The outbound queue's options (one worker, as chat.Pipeline opens it): each idle
		// worker claims every 250 ms, and four made 11,520 claims in the 12 minutes.
		q, _ := Open(context.Background(), db, Options{Name: "outbound", Group: "chat", Workers: 1, Events: rec.add, Blocked: down.Load, MaxAttempts: 200,
			Handler: func(ctx context.Context, it Item) error { return errors.New("websocket not connected") }})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go q.Run(ctx)
		go q.RunWatchdog(ctx, 15*time.Second)
		for i := range 5 {
			q.Enqueue(ctx, map[string]string{"chat": "c", "text": fmt.Sprint(i)})
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := rec.count("QUEUE_STUCK"); n != 0 {
			t.Fatalf("QUEUE_STUCK %d times during the outage", n)
		}
		if st, _ := q.Stats(ctx); st.Depth != 5 || st.Oldest >= time.Minute {
			t.Fatalf("the items behind the group's first count as due: %+v", st)
		}
		down.Store(false)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if n := rec.count("QUEUE_STUCK"); n != 1 {
			st, err := q.Check(ctx)
			t.Fatalf("QUEUE_STUCK %d times once nothing blocks the queue (%+v %v; last progress %v ago)", n, st, err, time.Since(time.Unix(0, q.lastProgress.Load())))
		}
	})
}
