package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A grouped claim looks up earlier items of the group through the index, never by
// scanning the queue for each candidate (a 2,000-item backlog made every claim take
// about a second before the index).
func TestGroupedClaimUsesTheIndex(t *testing.T) {
	t.Parallel()
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
		q, _ := Open(context.Background(), db, Options{Name: "outbound", Group: "chat", Events: rec.add, Blocked: down.Load, MaxAttempts: 200,
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
