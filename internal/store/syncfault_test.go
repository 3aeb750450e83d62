package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A batch whose commit was made but whose sync failed is not written again: the
// writer's retry would store its rows twice (the audit, the journal's events and
// decisions). Its rows are not kept for a retry either.
func TestWriterDoesNotWriteACommittedBatchAgain(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	failed := make(chan struct{})
	var once atomic.Bool
	db.h.sync.sync = func(*os.File) error {
		if once.CompareAndSwap(false, true) {
			close(failed)
			return syscall.EIO
		}
		return nil
	}
	w := NewWriter(WriterOptions[AuditEntry]{Name: "audit", Write: db.InsertAudit})
	w.Add(AuditEntry{Time: time.Unix(1, 0), Action: "RESTART_SERVICE", Outcome: "ok"}) // its batch's sync fails
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx, time.Minute) }()
	<-failed
	if err := w.Commit(ctx, AuditEntry{Time: time.Unix(2, 0), Action: "RESET_DB", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var rows []string
	if err := db.Select(ctx, &rows, `SELECT action FROM audit ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0] != "RESTART_SERVICE" || rows[1] != "RESET_DB" {
		t.Fatalf("audit rows %q, want each once: RESTART_SERVICE, RESET_DB", rows)
	}
	if w.Len() != 0 {
		t.Fatalf("%d rows kept for a retry", w.Len())
	}
}

// A reopen (RESET_DB) keeps what the old handles owed the disk: commits made without
// waiting (the inbound queue's, whose receipt waits for Sync at WhatsApp's socket) are
// on disk before a Sync after the reopen answers. The new handles open before the old
// close, so the old close checkpoints nothing.
func TestSyncAfterAReopenCoversCommitsBeforeIt(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	if err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, "synced") }); err != nil {
		t.Fatal(err)
	}
	if err := db.WithTxUnsynced(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, "unsynced") }); err != nil {
		t.Fatal(err)
	}
	before := db.Stats().Syncs
	if err := db.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().Syncs - before; n == 0 {
		t.Fatal("an unsynced commit before a reopen: Sync answered after it without a sync of the WAL")
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().Syncs - before; n != 1 {
		t.Fatalf("%d syncs, want 1: once on disk, Sync costs nothing", n)
	}
}

// A WAL that the handles saw and that is gone when the first sync opens it was deleted
// under them: what was committed to it is only in an unlinked file, and the sync must
// say so rather than report it on disk.
func TestSyncOfADeletedWALFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	if err := os.WriteFile(path+"-wal", []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	var id walID
	id.is(fileID(path + "-wal"))
	s := newWALSync(path, &id, new(atomic.Int64))
	defer s.close()
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := s.wait(s.committed()); !errors.Is(err, errSync) {
		t.Fatalf("the WAL was deleted after the handles opened it: %v, want errSync", err)
	}
	var none walID // no WAL yet when the handles opened: nothing to sync
	s2 := newWALSync(filepath.Join(dir, "y.db"), &none, new(atomic.Int64))
	defer s2.close()
	if err := s2.wait(s2.committed()); err != nil {
		t.Fatalf("no WAL was ever seen: %v", err)
	}
}

// A reopen (RESET_DB) while a Sync waits for the disk (a receipt held in
// whatsapp.Options.BeforeWrite) waits for that sync and then swaps the handles: no
// deadlock, and the Sync answers only once its sync returned.
func TestReopenWhileASyncWaits(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	if err := db.WithTxUnsynced(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, "held") }); err != nil {
		t.Fatal(err)
	}
	g := gate(db)
	synced := make(chan error, 1)
	go func() { synced <- db.Sync() }()
	<-g.started
	reopened := make(chan error, 1)
	go func() { reopened <- db.Reopen(ctx) }()
	select {
	case err := <-synced:
		t.Fatalf("Sync answered (%v) while its sync was held", err)
	case err := <-reopened:
		t.Fatalf("Reopen returned (%v) while a sync of the old handles was under way", err)
	default:
	}
	close(g.release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if err := <-reopened; err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil || !hasState(t, db, "held") {
		t.Fatalf("after the reopen: %v", err)
	}
}
