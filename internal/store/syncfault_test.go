package store

import (
	"context"
	"os"
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
