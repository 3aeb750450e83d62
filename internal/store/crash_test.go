package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// TestHelperWriter is the child process of TestKillDuringWriteBurst: it writes batches
// of 10 events, one transaction each, and reports each commit on stdout.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("REMEDY_STORE_WRITER")
	if path == "" {
		t.Skip("helper process for TestKillDuringWriteBurst")
	}
	ctx := context.Background()
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := 1; ; i++ {
		batch := make([]engine.Event, 10)
		for j := range batch {
			batch[j] = engine.Event{Time: time.Now(), Code: "BURST", Message: fmt.Sprintf("%d-%d", i, j)}
		}
		if err := db.InsertEvents(ctx, batch); err != nil {
			fmt.Println("insert:", err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i)
	}
}

func TestKillDuringWriteBurst(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "remedy.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REMEDY_STORE_WRITER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed "))
		if err != nil {
			t.Fatalf("helper: %s", sc.Text())
		}
		last = n
		if last >= 300 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-burst
		t.Fatal(err)
	}
	cmd.Wait()
	if last < 300 {
		t.Fatalf("helper stopped after %d batches", last)
	}

	ctx := context.Background()
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	if err := db.Select(ctx, &msgs, `SELECT message FROM events WHERE code = 'BURST'`); err != nil {
		t.Fatal(err)
	}
	perBatch := map[int]int{}
	for _, m := range msgs {
		b, _, _ := strings.Cut(m, "-")
		n, _ := strconv.Atoi(b)
		perBatch[n]++
	}
	for i := 1; i <= last; i++ {
		if perBatch[i] != 10 {
			t.Fatalf("batch %d, reported committed, has %d of 10 rows", i, perBatch[i])
		}
	}
	for b, n := range perBatch {
		if n != 10 {
			t.Fatalf("batch %d is partial: %d rows (a transaction was torn)", b, n)
		}
	}
	t.Logf("%d batches reported before the kill, %d on disk, all whole", last, len(perBatch))
}
