package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHelperRebuilder is the child process of TestKillDuringRebuild: it opens a damaged
// file with Repair (a rebuild at start) and prints the rows copied after every batch.
func TestHelperRebuilder(t *testing.T) {
	path := os.Getenv("REMEDY_STORE_REBUILD")
	if path == "" {
		t.Skip("helper process for TestKillDuringRebuild")
	}
	db, err := Open(context.Background(), Options{Path: path, Schema: RemedySchema, Repair: true, rebuildBatch: testBatch,
		Progress: func(p RebuildProgress) { fmt.Printf("copied %d\n", p.Copied) }})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	db.Close()
	fmt.Println("done")
}

// A rebuild killed with SIGKILL at seeded random points, then started again: the file at
// PATH is, at every restart, the damaged one or a complete copy with every critical row.
func TestKillDuringRebuild(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REBUILD_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (REBUILD_SEED=%d reproduces it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	const n = fixtureEvents
	src := rebuildFixture(t, n)
	damagedBytes, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	damaged := fileSum(t, src)
	for round := 0; round < 3; round++ {
		path := filepath.Join(t.TempDir(), "remedy.db")
		os.WriteFile(path, damagedBytes, 0o600)
		target := int64(rng.IntN(n))
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRebuilder$", "-test.count=1")
		cmd.Env = append(os.Environ(), "REMEDY_STORE_REBUILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if c, err := strconv.ParseInt(strings.TrimPrefix(line, "copied "), 10, 64); err == nil && c >= target {
				break
			}
			if !strings.HasPrefix(line, "copied ") && !strings.HasPrefix(line, "PASS") && !strings.HasPrefix(line, "ok") && line != "done" {
				t.Fatalf("helper: %s", line)
			}
		}
		cmd.Process.Kill() // SIGKILL mid-rebuild (or just after it finished)
		cmd.Wait()
		if fileSum(t, path) != damaged {
			// Swapped before the kill: it must be complete.
			if got := rawCount(t, path, "state"); got != 5 {
				t.Fatalf("seed %d round %d: swapped file has %d state rows", seed, round, got)
			}
		}
		db, err := Open(context.Background(), Options{Path: path, Schema: RemedySchema, Repair: true, rebuildBatch: testBatch})
		if err != nil {
			t.Fatalf("seed %d round %d: restart after kill -9: %v", seed, round, err)
		}
		var states, events int
		db.Get(context.Background(), &states, `SELECT count(*) FROM state`)
		db.Get(context.Background(), &events, `SELECT count(*) FROM events`)
		db.Close()
		if states != 5 || events < n*3/4 {
			t.Fatalf("seed %d round %d (killed at %d rows): after the restart %d state rows (want 5), %d events (want most of %d)",
				seed, round, target, states, events, n)
		}
		if _, err := os.Stat(path + rebuildSuffix); err == nil {
			t.Fatalf("seed %d round %d: a partial copy left behind", seed, round)
		}
	}
}
