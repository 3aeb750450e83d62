package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// B4: a periodic check cut off by its deadline was "inconclusive" and counted as a
// pass, so a file too large to check within check_interval was never checked. Now the
// full check has its own budget, and one that cannot finish within it is a finding:
// DB_CHECK_UNFINISHED, Health and Integrity say so, and a probe that passes does not
// clear it; only a completed check does (DB_OK).
func TestUnfinishedIntegrityCheckIsAFinding(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.runHealth(ctx, 10*time.Millisecond, time.Nanosecond); close(done) }()
	s.wait(t, "DB_CHECK_UNFINISHED")
	cancel()
	<-done
	if h := db.Health(); !strings.Contains(h, "integrity check unfinished") {
		t.Errorf("Health = %q, want the unfinished check", h)
	}
	if r := db.Integrity(); !strings.HasPrefix(r.Result, "integrity check unfinished") || r.Checked.IsZero() {
		t.Errorf("Integrity = %+v", r)
	}
	if err := db.Probe(context.Background()); err != nil || db.Health() == "ok" {
		t.Errorf("a probe (%v) cleared the finding: %q", err, db.Health())
	}
	if err := db.Check(context.Background()); err != nil || db.Health() != "ok" || db.Integrity().Result != "ok" || !s.has("DB_OK") {
		t.Errorf("a completed check: %v, health %q, integrity %+v, DB_OK %v", err, db.Health(), db.Integrity(), s.has("DB_OK"))
	}
}

// The scheduled check finds damage (B4's overwritten pages) and keeps saying so: a
// passing probe does not hide it.
func TestScheduledCheckFindsDamage(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx := context.Background()
	if err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error {
		for i := range 3000 {
			if _, err := tx.Exec(ctx, `INSERT INTO events(ts, code, message) VALUES (?, 'X', ?)`, i, strings.Repeat("x", 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	var pages []int
	if err := db.Select(ctx, &pages, `SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno LIMIT 2 OFFSET 10`); err != nil || len(pages) < 2 {
		t.Fatal(pages, err)
	}
	corrupt(t, db.Path(), pages[0]-1, 2)
	if _, err := db.Exec(ctx, `INSERT INTO state(key, updated) VALUES ('after', 1)`); err != nil { // no cached page answers
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { db.RunHealth(rctx, 10*time.Millisecond); close(done) }()
	s.wait(t, "DB_CORRUPT")
	if err := db.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if !strings.Contains(db.Health(), "corrupt") || !strings.Contains(db.Integrity().Result, "corrupt") {
		t.Errorf("health %q, integrity %+v after the check found damage and a probe passed", db.Health(), db.Integrity())
	}
}
