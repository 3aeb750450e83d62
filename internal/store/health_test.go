package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// The scheduled health check runs on its interval (fake time) and notices a file
// deleted underneath the pool.
func TestRunHealthOnSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newSink()
		dir := t.TempDir()
		db, err := Open(context.Background(), Options{Path: filepath.Join(dir, "remedy.db"), Schema: RemedySchema, Events: s.add})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { db.RunHealth(ctx, 30*time.Second); close(done) }()

		time.Sleep(31 * time.Second) // past the first check, on the bubble's clock
		synctest.Wait()
		if s.has("DB_CONN_LOST") {
			t.Fatal("a healthy database was reported lost")
		}
		os.Remove(db.Path())
		time.Sleep(30 * time.Second) // the next check
		synctest.Wait()
		if !s.has("DB_CONN_LOST") {
			t.Fatalf("deleted file not noticed by the scheduled check: %v", s.codes())
		}
		cancel()
		<-done
	})
}

func TestOpenDataDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var got []engine.Event
	d, err := OpenData(context.Background(), dir, func(ev engine.Event) { got = append(got, ev) })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, f := range []string{RemedyFile, MetricsFile, ReserveFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !d.Reserve.Held() {
		t.Fatal("reserve not held")
	}
}

func TestDataCleaners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := OpenData(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Main.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('bad', '{', 1)`)
	rep, err := d.CleanDB(ctx)
	if err != nil || rep != "state: 1 quarantined (unparseable JSON, kept in the quarantine table)" {
		t.Fatalf("%q %v", rep, err)
	}
	d.Reserve.Release()
	msg, err := d.PruneMetrics(ctx)
	if err != nil || !d.Reserve.Held() || !strings.Contains(msg, "rolled up 0") {
		t.Fatalf("%q %v, reserve held %v", msg, err, d.Reserve.Held())
	}
}

// A check cut off by its deadline while a write waits on another connection's lock (and
// so holds the only writer) is inconclusive: no DB_CONN_LOST, which would reset a pool
// that is fine.
func TestBusyDatabaseIsNotLost(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	release := lockHolder(t, db.Path())
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('waiting', '{}', 1)`)
		done <- err
	}()
	s.wait(t, "DB_BUSY") // the write is waiting on the lock, holding the writer
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := db.Check(ctx); err != nil || s.has("DB_CONN_LOST") {
		t.Fatalf("check under a held lock: %v, events %v", err, s.codes())
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("the waiting write: %v", err)
	}
	if err := db.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A write after the file was replaced does not go into the orphaned old inode: it is
// reported at once (DB_CONN_LOST), waits, and lands in the new file after Reopen.
func TestWriteToAReplacedFileWaitsForReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSink()
	db := openTest(t, s)
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('before', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
	copyPath := db.Path() + ".restored"
	if _, err := db.Exec(ctx, `VACUUM INTO ?`, copyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyPath, db.Path()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('after', '{}', 2)`)
		done <- err
	}()
	s.wait(t, "DB_CONN_LOST")
	select {
	case err := <-done:
		t.Fatalf("the write went through before the reopen: %v", err)
	default:
	}
	if err := db.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := db.Select(ctx, &keys, `SELECT key FROM state WHERE key IN ('before', 'after') ORDER BY key`); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "after,before" {
		t.Fatalf("rows in the new file: %v", keys)
	}
}

// DB_CONN_LOST carries the reason label the code catalogue promises (before: db only, so
// db-conn-lost's summary read "connection lost (); reopening").
func TestConnLostSaysWhy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSink()
	db := openTest(t, s)
	copyPath := db.Path() + ".restored"
	if _, err := db.Exec(ctx, `VACUUM INTO ?`, copyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyPath, db.Path()); err != nil {
		t.Fatal(err)
	}
	if err := db.Probe(ctx); err == nil {
		t.Fatal("probe passed on a replaced file")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.Code == "DB_CONN_LOST" {
			if ev.Labels["reason"] != "file replaced" || ev.Labels["db"] != "remedy" {
				t.Fatalf("labels %v", ev.Labels)
			}
			return
		}
	}
	t.Fatal("no DB_CONN_LOST")
}
