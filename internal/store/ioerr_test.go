package store

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// A write that meets a real I/O error (the kernel refusing writes to the WAL) is retried
// until the fault ends, and reported as DB_IOERR, never as a busy lock: the busy alert's
// runbook (find who holds the lock) would send the operator the wrong way.
func TestIOErrorRetriedAndReportedAsSuch(t *testing.T) {
	t.Parallel()
	s := newSink()
	db := openTest(t, s)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES ('a', 't', '{}', 0)`); err != nil {
		t.Fatal(err)
	}
	// The immutable attribute: ext4 refuses every write to the open file with EPERM,
	// which SQLite reports as SQLITE_IOERR_WRITE. Needs root and such a file system.
	wal := db.opts.Path + "-wal"
	if out, err := exec.Command("chattr", "+i", wal).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s immutable here: %v %s", wal, err, out)
	}
	lift := func() { exec.Command("chattr", "-i", wal).Run() }
	t.Cleanup(lift)
	// A deadline far past the test's wait: the write retries until the fault is lifted.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(wctx, `INSERT INTO state(key, kind, data, updated) VALUES ('b', 't', '{}', 0)`)
		done <- err
	}()
	s.wait(t, "DB_IOERR")
	select {
	case err := <-done:
		t.Fatalf("the write ended during the fault: %v", err)
	default:
	}
	lift()
	if err := <-done; err != nil {
		t.Fatalf("the write after the fault: %v", err)
	}
	var n int
	if err := db.Get(ctx, &n, `SELECT count(*) FROM state WHERE kind = 't'`); err != nil || n != 2 {
		t.Fatalf("rows %d, %v", n, err)
	}
	if codes := s.codes(); slices.Contains(codes, "DB_BUSY") {
		t.Fatalf("an I/O error reported as a busy lock: %v", codes)
	}
}
