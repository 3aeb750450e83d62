package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestResetStaleStateKeepsBeforeImage(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	ctx := context.Background()
	old := time.Now().Add(-3 * time.Hour).UnixMilli()
	fresh := time.Now().UnixMilli()
	db.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES
		('u1', 'session', '{"step":"awaiting_payment"}', ?),
		('u2', 'session', '{"step":"menu"}', ?),
		('c1', 'conversation', '{"topic":"order"}', ?)`, old, fresh, old)
	n, err := db.ResetState(ctx, "sessions", time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("reset %d (%v), want only the stale session", n, err)
	}
	var data string
	db.Get(ctx, &data, `SELECT data FROM state WHERE key = 'u1'`)
	var untouched int
	db.Get(ctx, &untouched, `SELECT count(*) FROM state WHERE data != '{}'`)
	var before string
	db.Get(ctx, &before, `SELECT output FROM audit WHERE action = 'RESET_STATE' AND instance = 'u1'`)
	if data != "{}" || untouched != 2 || !strings.Contains(before, `"step":"awaiting_payment"`) {
		t.Fatalf("data %s, untouched %d, before-image %s", data, untouched, before)
	}
	if n, _ := db.ResetState(ctx, "all", time.Hour); n != 1 {
		t.Fatalf("all: reset %d, want the stale conversation", n)
	}
	if _, err := db.ResetState(ctx, "everything", time.Hour); err == nil {
		t.Fatal("unknown scope accepted")
	}
}

func TestInsertAudit(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	ctx := context.Background()
	err := db.InsertAudit(ctx, []AuditEntry{{Policy: "svc", Instance: "bot", DecisionID: 9, Action: "RESTART_SERVICE",
		Step: 1, Attempt: 2, Params: map[string]string{"service": "bot"}, Time: time.Now(), Duration: 1500 * time.Millisecond,
		Outcome: "failed", Error: "exit status 1", Output: "starting…"}})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Audit(ctx, 10)
	if err != nil || len(rows) != 1 || rows[0].Params != `{"service":"bot"}` || rows[0].DurationMS != 1500 || rows[0].Attempt != 2 {
		t.Fatalf("%v %+v", err, rows)
	}
}
