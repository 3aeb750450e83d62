package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// sink collects the events a database reports.
type sink struct {
	mu     sync.Mutex
	events []engine.Event
	notify chan string
}

func newSink() *sink { return &sink{notify: make(chan string, 1024)} }

func (s *sink) add(ev engine.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	select {
	case s.notify <- ev.Code:
	default:
	}
}

func (s *sink) codes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e.Code)
	}
	return out
}

func (s *sink) has(code string) bool {
	for _, c := range s.codes() {
		if c == code {
			return true
		}
	}
	return false
}

// wait blocks until the database reports code (or the test's deadline).
func (s *sink) wait(t *testing.T, code string) {
	t.Helper()
	if s.has(code) {
		return
	}
	for c := range s.notify {
		if c == code {
			return
		}
	}
}

func openTest(t *testing.T, s *sink) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Name: "remedy",
		Schema: RemedySchema, Events: s.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lockHolder is a second connection holding the write lock, as another process would.
func lockHolder(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	other.SetMaxOpenConns(1)
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `INSERT INTO state(key, data, updated) VALUES ('held', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), `COMMIT`)
			conn.Close()
			other.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func TestOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	files, _ := fs.Glob(RemedySchema.Migrations, "*.sql")
	var n int
	if err := db.Get(context.Background(), &n, `SELECT count(*) FROM schema_migrations`); err != nil || n != len(files) || n < 2 {
		t.Fatalf("migrations: %d of %d (%v)", n, len(files), err)
	}
	path := db.Path()
	db.Close()
	db2, err := Open(context.Background(), Options{Path: path, Schema: RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.Get(context.Background(), &n, `SELECT count(*) FROM schema_migrations`); err != nil || n != len(files) {
		t.Fatalf("migrations after reopen: %d %v", n, err)
	}
	var mode string
	db2.Get(context.Background(), &mode, `PRAGMA journal_mode`)
	var fk int
	db2.Get(context.Background(), &fk, `PRAGMA foreign_keys`)
	if mode != "wal" || fk != 1 {
		t.Fatalf("journal_mode %s, foreign_keys %d", mode, fk)
	}
}

func TestRetryWaitsForTheWriteLock(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	release := lockHolder(t, db.Path())
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(context.Background(), `INSERT INTO state(key, data, updated) VALUES ('mine', '{}', 2)`)
		done <- err
	}()
	s.wait(t, "DB_BUSY") // the insert met the lock and is retrying
	release()
	if err := <-done; err != nil {
		t.Fatalf("insert after the lock was released: %v", err)
	}
	var n int
	db.Get(context.Background(), &n, `SELECT count(*) FROM state`)
	if n != 2 {
		t.Fatalf("%d rows, want both", n)
	}
	if db.Stats().BusyWaits < 1 {
		t.Fatal("busy wait not counted")
	}
}

func TestRetryGivesUpAtTheDeadline(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	lockHolder(t, db.Path())
	// Well past the 200 ms busy timeout, so that at least one try meets the lock even on
	// a loaded machine: the deadline then ends the retries, whatever the speed.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('mine', '{}', 2)`)
	if err == nil || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("err = %v", err)
	}
	if !s.has("DB_RETRY_EXHAUSTED") {
		t.Fatalf("events %v", s.codes())
	}
}

// A query whose caller stops waiting (remedy stopping, a client gone) is not a database
// fault: three such at a stop under load paged db-retry-exhausted on a healthy database.
// A deadline still is (TestRetryGivesUpAtTheDeadline).
func TestCanceledCallerIsNotADatabaseFault(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('gone', '{}', 1)`); err == nil {
		t.Fatal("a canceled insert succeeded")
	}
	// Canceled while it waits out a lock.
	release := lockHolder(t, db.Path())
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('mine', '{}', 2)`)
		done <- err
	}()
	s.wait(t, "DB_BUSY")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while retrying: %v", err)
	}
	release()
	if s.has("DB_TIMEOUT") || s.has("DB_RETRY_EXHAUSTED") {
		t.Fatalf("a caller's cancellation reported as a database fault: %v", s.codes())
	}
}

func TestNonTransientErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx := context.Background()
	db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('k', '{}', 1)`)
	_, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('k', '{}', 1)`) // constraint
	if err == nil || s.has("DB_BUSY") || s.has("DB_RETRY_EXHAUSTED") {
		t.Fatalf("constraint error %v, events %v", err, s.codes())
	}
	if _, err := db.Exec(ctx, `INSERT INTO nope VALUES (1)`); err == nil {
		t.Fatal("syntax error accepted")
	}
}

func TestWithTxRollsBackOnErrorAndPanic(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	ctx := context.Background()
	insert := func(ctx context.Context, tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('x', '{}', 1)`)
		return err
	}
	boom := errors.New("boom")
	if err := db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { insert(ctx, tx); return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Fatalf("panic not re-raised: %v", p)
			}
		}()
		db.WithTx(ctx, func(ctx context.Context, tx *Tx) error { insert(ctx, tx); panic("kaboom") })
	}()
	var n int
	if err := db.Get(ctx, &n, `SELECT count(*) FROM state`); err != nil || n != 0 {
		t.Fatalf("%d rows after rollbacks (%v)", n, err)
	}
	// The writer is usable afterwards: the rolled-back transactions released it.
	if err := db.WithTx(ctx, insert); err != nil {
		t.Fatal(err)
	}
}

func TestWithTxWaitsForTheLockThenCommits(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	release := lockHolder(t, db.Path())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- db.WithTx(context.Background(), func(ctx context.Context, tx *Tx) error {
			calls++
			_, err := tx.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('t', '{}', 1)`)
			return err
		})
	}()
	s.wait(t, "DB_BUSY")
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times; BEGIN IMMEDIATE waits before it runs", calls)
	}
}

func TestReplacedFileIsDetectedAndReopened(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx := context.Background()
	if err := db.InsertEvent(ctx, engine.Event{Time: time.Now(), Code: "BEFORE"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("healthy check: %v", err)
	}
	// Another database file is moved over ours (a restore, a deploy script).
	other := filepath.Join(t.TempDir(), "other.db")
	o, err := Open(ctx, Options{Path: other, Schema: RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	o.InsertEvent(ctx, engine.Event{Time: time.Now(), Code: "FROM_OTHER"})
	o.Close()
	if err := os.Rename(other, db.Path()); err != nil {
		t.Fatal(err)
	}
	err = db.Check(ctx)
	if !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "replaced") || !s.has("DB_CONN_LOST") {
		t.Fatalf("check: %v, events %v", err, s.codes())
	}
	if err := db.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil || !s.has("DB_OK") {
		t.Fatalf("after reopen: %v %v", err, s.codes())
	}
	evs, _ := db.Events(ctx, time.Unix(0, 0), time.Now().Add(time.Hour))
	if len(evs) != 1 || evs[0].Code != "FROM_OTHER" {
		t.Fatalf("reads the old file after reopen: %v", evs)
	}
}

func TestDeletedFileIsDetected(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	os.Remove(db.Path())
	if err := db.Check(context.Background()); !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("check: %v", err)
	}
	if err := db.Reopen(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(context.Background(), `INSERT INTO state(key, data, updated) VALUES ('a', '{}', 1)`); err != nil {
		t.Fatalf("write after reopen: %v", err)
	}
}

func TestWritesRetryingDuringAReopenAreKept(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	release := lockHolder(t, db.Path())
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(context.Background(), `INSERT INTO state(key, data, updated) VALUES ('kept', '{}', 1)`)
		done <- err
	}()
	s.wait(t, "DB_BUSY")
	if err := db.Reopen(context.Background()); err != nil { // RESET_DB while a write is retrying
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("the retried write was lost: %v", err)
	}
	var n int
	db.Get(context.Background(), &n, `SELECT count(*) FROM state WHERE key = 'kept'`)
	if n != 1 {
		t.Fatal("row missing")
	}
}

func TestEventsRoundTrip(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	ctx := context.Background()
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	in := []engine.Event{
		{Time: t0, Code: "WA_DISCONNECTED", Source: "whatsapp", Labels: map[string]string{"reason": "network"}},
		{Time: t0.Add(time.Second), Code: "WA_CONNECTED", Source: "whatsapp", Value: 1.5, Message: "ok"},
	}
	if err := db.InsertEvents(ctx, in); err != nil {
		t.Fatal(err)
	}
	out, err := db.Events(ctx, t0, t0.Add(time.Minute))
	if err != nil || len(out) != 2 || out[0].Labels["reason"] != "network" || out[1].Value != 1.5 || !out[1].Time.Equal(in[1].Time) {
		t.Fatalf("%v %+v", err, out)
	}
}

// RESET_DB while another process holds the write lock (a 30 s lock, the write-lock
// field case): before, remedy.db's open set auto_vacuum on every connection, which
// waited for the lock, so Reopen closed the old pool, could not open a new one, and
// every query answered "connection is already closed" until remedy restarted (and no
// reader could open during any lock). Now the pragma is set only when the file is
// created: the reopen succeeds under the lock, and reads go on.
func TestReopenUnderAWriteLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), RemedyFile)
	db, err := Open(ctx, Options{Path: path, Name: "remedy", Schema: RemedySchema,
		Events: newSink().add, CreatePragmas: []string{retentionPragma}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode int
	if err := db.Get(ctx, &mode, `PRAGMA auto_vacuum`); err != nil || mode != 2 {
		t.Fatalf("a new file's auto_vacuum: %d (%v), want 2 (incremental)", mode, err)
	}
	release := lockHolder(t, path)
	if err := db.Reopen(ctx); err != nil {
		t.Fatalf("reopen under another process's write lock: %v", err)
	}
	var n int
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.Get(rctx, &n, `SELECT count(*) FROM schema_migrations`); err != nil || n == 0 {
		t.Fatalf("read during the lock after the reopen: %d (%v)", n, err)
	}
	release()
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('after', '{}', 1)`); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
}

// A reopen whose new pool cannot open loses no handles for good. On the same file the
// old handles stay until the new ones are open; when the file was replaced they must
// close first, and if the new file cannot be opened (here: not a database, until a good
// copy is put back) the next use opens it again. A closed DB stays closed.
func TestAFailedReopenIsOpenedAgainAtNextUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTest(t, newSink())
	good := db.Path() + ".good"
	if _, err := db.Exec(ctx, `VACUUM INTO ?`, good); err != nil {
		t.Fatal(err)
	}
	bad := db.Path() + ".bad"
	if err := os.WriteFile(bad, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bad, db.Path()); err != nil {
		t.Fatal(err)
	}
	if err := db.Reopen(ctx); err == nil {
		t.Fatal("reopen on a file that is not a database succeeded")
	}
	if err := os.Rename(good, db.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('after', '{}', 1)`); err != nil {
		t.Fatalf("write once a good file is back: %v", err)
	}
	db.Close()
	if err := db.restore(); err != nil || db.h != nil {
		t.Fatalf("a closed database was opened again (%v)", err)
	}
}
