package queue

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

// Options.DeadLettered hears of every item that reaches the dead-letter table, however
// it gets there (its last attempt, a permanent failure, Clear), once, with the reason
// the table records; an error from it keeps the item where it was (one transaction).
func TestDeadLetteredHearsEveryWayIn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		var told []string
		failHook := true
		q, _ := Open(context.Background(), db, Options{Name: "outbound", Workers: 1, MaxAttempts: 2, RetryDelay: time.Second,
			Handler: func(ctx context.Context, it Item) error {
				if text(it) == "permanent" {
					return Permanent(errors.New("refused"))
				}
				return errors.New("send failed")
			},
			DeadLettered: func(ctx context.Context, tx *store.Tx, it Item, reason string) error {
				if text(it) == "veto" && failHook {
					failHook = false
					return errors.New("hook failed")
				}
				told = append(told, text(it)+": "+reason)
				return nil
			}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for _, s := range []string{"retried", "permanent"} {
			q.Enqueue(ctx, s)
		}
		go q.Run(ctx)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		cancel()
		synctest.Wait()
		q.Enqueue(context.Background(), "cleared")
		n, err := q.Clear(context.Background(), 0, "cleared by policy")
		if err != nil || n != 1 {
			t.Fatalf("clear: %d %v", n, err)
		}
		sort.Strings(told)
		want := "cleared: cleared by policy|permanent: refused|retried: failed 2 times: send failed"
		if got := strings.Join(told, "|"); got != want {
			t.Fatalf("told\n%s\nwant\n%s", got, want)
		}
		dl, _ := DeadLetters(context.Background(), db, "outbound", true)
		if len(dl) != 3 {
			t.Fatalf("%d dead letters", len(dl))
		}
		// A failing hook rolls the move back: the item stays queued, nothing is told.
		q.Enqueue(context.Background(), "veto")
		if _, err := q.Clear(context.Background(), 0, "x"); err == nil {
			t.Fatal("a failing hook did not fail Clear")
		}
		if st, _ := q.Stats(context.Background()); st.Depth != 1 {
			t.Fatalf("after a failed hook: %+v", st)
		}
	})
}
