package alert

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// An alert the database refuses (here: a read-only connection) is delivered at once on
// every channel that does not need the disk, in order, reported as STORE_BACKLOG, kept,
// and stored with those deliveries recorded once the database takes writes again: it is
// not sent twice, and the dashboard (which reads the table) gets it through the outbox.
func TestUnstorableAlertIsDeliveredThenStored(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		hook := &fakeChannel{name: "webhook"}
		dash := &fakeChannel{name: "dashboard"}
		ev := &recEvents{}
		p, err := New(context.Background(), Options{DB: db, Channels: []Channel{hook, dash}, Events: ev.add})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := db.Exec(ctx, `PRAGMA query_only = 1`); err != nil {
			t.Fatal(err)
		}
		go p.Run(ctx)
		now := time.Now()
		for _, q := range []string{"a", "b", "c"} {
			p.Submit(alertDecision("queue-stuck", q, engine.Firing, "error", now))
		}
		synctest.Wait()
		if got := strings.Join(hook.delivered(), ","); got != "queue-stuck:firing,queue-stuck:firing,queue-stuck:firing" {
			t.Fatalf("webhook while the database refuses writes: %q", got)
		}
		if len(dash.delivered()) != 0 || p.Backlog() != 3 || !strings.Contains(ev.codes(), "STORE_BACKLOG") {
			t.Fatalf("dashboard %v, backlog %d, events %q", dash.delivered(), p.Backlog(), ev.codes())
		}
		var n int
		if err := db.Get(ctx, &n, `SELECT count(*) FROM alerts`); err != nil || n != 0 {
			t.Fatalf("alerts stored: %d %v", n, err)
		}
		if _, err := db.Exec(ctx, `PRAGMA query_only = 0`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if p.Backlog() != 0 {
			t.Fatalf("backlog %d after the database took writes again", p.Backlog())
		}
		var rows []struct {
			Instance  string `db:"instance"`
			Channel   string `db:"channel"`
			Delivered int64  `db:"delivered"`
		}
		if err := db.Select(ctx, &rows, `SELECT a.instance, o.channel, o.delivered FROM alerts a JOIN alert_outbox o ON o.alert_id = a.id ORDER BY a.id, o.channel`); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Instance+"/"+r.Channel)
			if r.Delivered == 0 {
				t.Fatalf("outbox row not delivered: %+v", r)
			}
		}
		if strings.Join(got, " ") != "a/dashboard a/webhook b/dashboard b/webhook c/dashboard c/webhook" {
			t.Fatalf("stored in order with their channels: %v", got)
		}
		if len(hook.delivered()) != 3 || len(dash.delivered()) != 3 {
			t.Fatalf("webhook %d deliveries (want 3, none twice), dashboard %d", len(hook.delivered()), len(dash.delivered()))
		}
	})
}
