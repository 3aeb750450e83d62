package queue

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/store"
)

func processedHook(ctx context.Context, tx *store.Tx, it Item) error {
	_, err := tx.Exec(ctx, `INSERT INTO processed_test(item) VALUES (?)`, it.ID)
	return err
}

func handler(ctx context.Context, it Item) error {
	time.Sleep(2 * time.Millisecond) // some work, so the kill lands mid-stream
	return nil
}

// TestHelperQueueWorker is the child of TestKillDuringProcessing: it works the queue
// until it is killed.
func TestHelperQueueWorker(t *testing.T) {
	path := os.Getenv("REMEDY_QUEUE_WORKER")
	if path == "" {
		t.Skip("helper process")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	q, err := Open(ctx, db, Options{Name: "inbound", Workers: 4, Handler: handler, Complete: processedHook})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	q.Run(ctx)
}

func TestKillDuringProcessing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(ctx, `CREATE TABLE processed_test (item INTEGER NOT NULL)`)
	q, _ := Open(ctx, db, Options{Name: "inbound", Handler: handler})
	for i := 0; i < 300; i++ {
		if _, err := q.Enqueue(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperQueueWorker$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REMEDY_QUEUE_WORKER="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The deadlines are safety nets, not speed limits: generous for a loaded machine.
	deadline := time.Now().Add(2 * time.Minute)
	for n := 0; n < 60; db.Get(ctx, &n, `SELECT count(*) FROM processed_test`) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the worker process made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL with items in flight
	cmd.Wait()

	// remedy starts again: in-flight items are ready again, and the rest is worked off.
	q, err = Open(ctx, db, Options{Name: "inbound", Workers: 4, Handler: handler, Complete: processedHook})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go q.Run(rctx)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d items left", st.Depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var total, distinct int
	db.Get(ctx, &total, `SELECT count(*) FROM processed_test`)
	db.Get(ctx, &distinct, `SELECT count(DISTINCT item) FROM processed_test`)
	if total != 300 || distinct != 300 {
		t.Fatalf("processed %d times over %d distinct items; want each of 300 exactly once", total, distinct)
	}
}
