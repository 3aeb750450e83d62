package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// syncGate stands in for the WAL's fsync: each sync reports itself on started and waits
// for release (closed: syncs pass).
type syncGate struct {
	started chan struct{}
	release chan struct{}
	n       atomic.Int64
}

func gate(db *DB) *syncGate {
	g := &syncGate{started: make(chan struct{}, 64), release: make(chan struct{})}
	db.h.sync.sync = func(*os.File) error {
		g.n.Add(1)
		g.started <- struct{}{}
		<-g.release
		return nil
	}
	return g
}

func putState(ctx context.Context, tx *Tx, key string) error {
	_, err := tx.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES (?, '{}', 1)`, key)
	return err
}

func hasState(t *testing.T, db *DB, key string) bool {
	t.Helper()
	var n int
	if err := db.Get(context.Background(), &n, `SELECT count(*) FROM state WHERE key = ?`, key); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// A write answers only once an fsync of the WAL that started after its commit has
// returned (the promise of synchronous=FULL: an answered input survives a power cut);
// the commit itself is made, and visible, before. WithTxUnsynced answers at its commit.
func TestWriteAnswersOnlyOnceItsCommitIsSynced(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	g := gate(db)
	for _, w := range []struct {
		name  string
		write func(key string) error
	}{
		{"WithTx", func(key string) error {
			return db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, key) })
		}},
		{"Exec", func(key string) error {
			_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES (?, '{}', 1)`, key)
			return err
		}},
	} {
		done := make(chan error, 1)
		go func() { done <- w.write(w.name) }()
		<-g.started
		if !hasState(t, db, w.name) {
			t.Fatalf("%s: the sync started before the commit", w.name)
		}
		select {
		case err := <-done:
			t.Fatalf("%s answered (%v) while its sync was under way", w.name, err)
		default:
		}
		g.release <- struct{}{} // this sync returns
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.WithTxUnsynced(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, "unsynced") }); err != nil {
		t.Fatal(err)
	}
	if n := g.n.Load(); n != 2 || !hasState(t, db, "unsynced") {
		t.Fatalf("%d syncs for two synced writes and one unsynced", n)
	}
}

// Commits made while a sync runs share the next sync: one writer holds no other up for
// the disk's time, and eight writes cost two syncs, not eight.
func TestCommitsDuringASyncShareTheNext(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	g := gate(db)
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	write := func(key string) {
		defer wg.Done()
		errs <- db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, key) })
	}
	s := db.h.sync
	s.mu.Lock()
	base := s.written // the open's ticket (newWALSync)
	s.mu.Unlock()
	wg.Add(1)
	go write("first")
	<-g.started // the first sync is held
	for i := range 8 {
		wg.Add(1)
		go write(string(rune('a' + i)))
	}
	for { // until the eight have committed and wait for the disk (no clock involved)
		s.mu.Lock()
		n := s.written - base
		s.mu.Unlock()
		if n == 9 {
			break
		}
		runtime.Gosched()
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := g.n.Load(); n != 2 {
		t.Fatalf("9 writes, 8 of them during the first sync: %d syncs, want 2", n)
	}
}

// A failed sync is DB_IOERR, and is not tried again as a sync: a second fsync may
// succeed though the pages the first could not write never reach the disk. A checkpoint
// (every committed frame copied into the file, which is synced) stands in for it, and
// the write answers once that completed. The transaction is never run again: it was
// committed (running it again would store it twice).
func TestAFailedSyncIsCoveredByACheckpoint(t *testing.T) {
	ctx := context.Background()
	s := newSink()
	db := openTest(t, s)
	syncs, checkpoints := 0, 0
	var mu sync.Mutex
	db.h.sync.sync = func(*os.File) error {
		mu.Lock()
		defer mu.Unlock()
		syncs++
		if syncs == 1 {
			return syscall.EIO
		}
		return nil // what Linux says after reporting the failure once
	}
	real := db.h.sync.checkpoint
	db.h.sync.checkpoint = func() error {
		mu.Lock()
		checkpoints++
		mu.Unlock()
		return real()
	}
	runs := 0
	err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { runs++; return putState(ctx, tx, "k") })
	if err != nil || runs != 1 || !hasState(t, db, "k") || !s.has("DB_IOERR") {
		t.Fatalf("err %v, ran %d times, committed %v, events %v", err, runs, hasState(t, db, "k"), s.codes())
	}
	if syncs != 1 || checkpoints != 1 {
		t.Fatalf("%d syncs and %d checkpoints; want the failed sync, then a checkpoint (not a second sync)", syncs, checkpoints)
	}
	if err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, "k2") }); err != nil || syncs != 2 || checkpoints != 1 {
		t.Fatalf("after the checkpoint: %v, %d syncs, %d checkpoints; want syncs again", err, syncs, checkpoints)
	}
}

// A disk that keeps refusing: the write gives up after the retry budget with errSync
// (not run again: it was committed) and DB_RETRY_EXHAUSTED, which raises
// db-retry-exhausted as a failing sync inside SQLite's commit did.
func TestASyncThatKeepsFailingGivesUp(t *testing.T) {
	ctx := context.Background()
	s := newSink()
	db, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Name: "remedy", Schema: RemedySchema, Events: s.add,
		Retry: Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond, Budget: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.h.sync.sync = func(*os.File) error { return syscall.EIO }
	db.h.sync.checkpoint = func() error { return syscall.EIO }
	runs := 0
	err = db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { runs++; return putState(ctx, tx, "k") })
	if !errors.Is(err, errSync) || runs != 1 || !hasState(t, db, "k") || !s.has("DB_IOERR") || !s.has("DB_RETRY_EXHAUSTED") {
		t.Fatalf("err %v, ran %d times, committed %v, events %v", err, runs, hasState(t, db, "k"), s.codes())
	}
	if err := db.Sync(); !errors.Is(err, errSync) {
		t.Fatalf("Sync with the commit not on disk: %v", err)
	}
}

// The sync goes to the WAL the connections write: a -wal file replaced before the first
// sync is refused, not synced in its place.
func TestSyncRefusesAReplacedWAL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	if err := os.WriteFile(path+"-wal", []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	var id walID
	id.is(fileID(path + "-wal"))
	fresh := func() *walSync { return newWALSync(path, &id, new(atomic.Int64)) }
	s := fresh()
	if err := s.wait(s.committed()); err != nil {
		t.Fatalf("the opened WAL: %v", err)
	}
	s.close()
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("another"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "other"), path+"-wal"); err != nil {
		t.Fatal(err)
	}
	s = fresh()
	defer s.close()
	if err := s.wait(s.committed()); !errors.Is(err, errSync) {
		t.Fatalf("a replaced WAL: %v, want errSync", err)
	}
}

// Sync puts what was committed without waiting on disk, sharing the syncs under way,
// and costs nothing when everything is on disk already. Opened handles owe one sync (what
// an earlier process or the handles a reopen replaced committed without one). A closed
// database has nothing to sync.
func TestSyncPutsUnsyncedCommitsOnDisk(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, newSink())
	var n atomic.Int64
	db.h.sync.sync = func(*os.File) error { n.Add(1); return nil }
	if err := db.Sync(); err != nil || n.Load() != 1 {
		t.Fatalf("just opened: %v, %d syncs, want 1", err, n.Load())
	}
	n.Store(0)
	if err := db.Sync(); err != nil || n.Load() != 0 {
		t.Fatalf("nothing committed: %v, %d syncs", err, n.Load())
	}
	for _, key := range []string{"a", "b", "c"} {
		if err := db.WithTxUnsynced(ctx, func(ctx context.Context, tx *Tx) error { return putState(ctx, tx, key) }); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 0 {
		t.Fatalf("unsynced commits synced %d times", n.Load())
	}
	if err := db.Sync(); err != nil || n.Load() != 1 {
		t.Fatalf("three unsynced commits: %v, %d syncs, want 1", err, n.Load())
	}
	if err := db.Sync(); err != nil || n.Load() != 1 {
		t.Fatalf("all on disk: %v, %d syncs, want none more", err, n.Load())
	}
	db.Close()
	if err := db.Sync(); err != nil {
		t.Fatalf("closed: %v", err)
	}
}
