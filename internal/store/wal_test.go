package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Field case C4: remedy.db-wal deleted under load went unnoticed (status ok), SQLite
// kept committing into the unlinked file, and after a kill -9 the rows acknowledged since
// were gone. The rule: the files the pool writes through are the files at their paths;
// a missing or replaced WAL is a lost handle (DB_CONN_LOST, RESET_DB), and the reopen
// folds the unlinked WAL's commits into the database file.
func TestDeletedWALIsNoticedAndItsCommitsKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSink()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema, Events: s.add})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev := func(i int) []engine.Event {
		return []engine.Event{{Time: time.Unix(int64(i), 0), Code: "ACKED", Message: "acknowledged"}}
	}
	for i := 0; i < 50; i++ {
		if err := db.InsertEvents(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Check(ctx); err != nil { // the reader pool's connections are open, as under load
		t.Fatal(err)
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	err = db.Check(ctx)
	t.Logf("check: %v", err)
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("health check with the WAL deleted: %v (want ErrConnLost)", err)
	}
	if !s.has("DB_CONN_LOST") {
		t.Fatalf("events %v, want DB_CONN_LOST", s.codes())
	}
	if err := db.Reopen(ctx); err != nil { // RESET_DB
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("after the reopen: %v", err)
	}
	if err := db.InsertEvents(ctx, ev(50)); err != nil {
		t.Fatal(err)
	}
	// What a kill -9 leaves: the database file without the WAL now in use. The 50 rows
	// committed before the reopen must be in it.
	crash := filepath.Join(t.TempDir(), "crash.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(crash, b, 0o600)
	if got := rawCount(t, crash, "events"); got < 50 {
		t.Fatalf("the database file alone holds %d of the 50 rows committed before the reopen", got)
	}
}

// Writes wait, as for a replaced file, while the WAL is missing: a commit into the
// unlinked WAL would be acknowledged and then lost by a crash.
func TestWriteWaitsWhileTheWALIsMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema, Retry: Retry{Initial: time.Millisecond, Max: time.Millisecond, Budget: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('a', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-wal")
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('b', '{}', 1)`); !errors.Is(err, ErrConnLost) {
		t.Fatalf("a write with the WAL deleted: %v (want it refused until the reopen)", err)
	}
	if err := db.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('b', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
}
