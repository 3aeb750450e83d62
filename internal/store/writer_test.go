package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// flakyTable is a Write function whose failures the test schedules.
type flakyTable struct {
	mu      sync.Mutex
	rows    []int
	fail    int // the next fail writes fail
	down    bool
	writes  int
	backlog []int // what Backlog was told, rows (0: cleared)
}

var errWrite = errors.New("database or disk is full")

func (f *flakyTable) write(_ context.Context, batch []int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.down || f.fail > 0 {
		f.fail--
		return errWrite
	}
	f.rows = append(f.rows, batch...)
	return nil
}

func (f *flakyTable) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flakyTable) written() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.rows...)
}

// Randomized, seeded: rows handed to a writer whose writes fail at random are all
// written, once each, in the order they were handed over, and the backlog is reported
// while they wait and cleared once they are written.
func TestWriterKeepsFailedRowsInOrder(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 20; seed++ {
		synctest.Test(t, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			tab := &flakyTable{}
			w := NewWriter(WriterOptions[int]{Name: "t", Write: tab.write, MaxBatch: 1 + rng.IntN(50),
				Backlog: func(_ string, rows int, _ error) {
					tab.mu.Lock()
					tab.backlog = append(tab.backlog, rows)
					tab.mu.Unlock()
				}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- w.Run(ctx, time.Minute) }()
			n := 0
			for range 200 {
				switch rng.IntN(4) {
				case 0:
					tab.mu.Lock()
					tab.fail = rng.IntN(5)
					tab.mu.Unlock()
				default:
					k := 1 + rng.IntN(20)
					vs := make([]int, k)
					for i := range vs {
						vs[i] = n
						n++
					}
					w.Add(vs...)
				}
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // the arrival pattern, on the bubble's clock
			}
			synctest.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			got := tab.written()
			if len(got) != n {
				t.Fatalf("seed %d: %d rows written of %d", seed, len(got), n)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("seed %d: row %d is %d: out of order or repeated", seed, i, v)
				}
			}
			if tab.writes > 0 && len(tab.backlog) > 0 && tab.backlog[len(tab.backlog)-1] != 0 {
				t.Fatalf("seed %d: backlog not cleared: %v", seed, tab.backlog)
			}
		})
	}
}

// Group commit: concurrent Commits share transactions and return only once their rows
// are written; a failed write answers every Commit in it with the error, and their rows
// are withdrawn (the caller was told they are not stored), while Add's rows stay.
func TestWriterCommit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tab := &flakyTable{}
		w := NewWriter(WriterOptions[int]{Name: "t", Write: tab.write, Limit: 100})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx, time.Minute) }()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if err := w.Commit(context.Background(), i); err != nil {
					t.Errorf("commit %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if got := len(tab.written()); got != 50 {
			t.Fatalf("%d rows written after 50 commits returned", got)
		}
		tab.setDown(true)
		w.Add(1000)
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := w.Commit(cctx, 2000, 2001)
		ccancel()
		if err == nil {
			t.Fatal("a commit on a failing store succeeded")
		}
		// The limit refuses at once rather than queueing without bound.
		big := make([]int, 101)
		if err := w.Commit(context.Background(), big...); !errors.Is(err, ErrOverloaded) {
			t.Fatalf("over the limit: %v", err)
		}
		tab.setDown(false)
		synctest.Wait()
		time.Sleep(10 * time.Second) // past the writer's retry delay (1 s at most), on the bubble's clock
		cancel()
		<-done
		got := tab.written()
		if got[len(got)-1] != 1000 {
			t.Fatalf("tail %v: the added row must be written, the refused commit's rows must not", got[50:])
		}
		for _, v := range got {
			if v == 2000 || v == 2001 {
				t.Fatalf("a refused commit's row was written: %v", got[50:])
			}
		}
	})
}

// Shedding and spooling keep memory bounded: a shed writer drops its oldest rows
// (counted); another moves rows past its limit to the spool, and writes them, in order,
// once the store takes writes again, even after a restart (the spool is a file).
func TestWriterBoundsMemory(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tab := &flakyTable{down: true}
		w := NewWriter(WriterOptions[int]{Name: "s", Write: tab.write, Limit: 10, Shed: true})
		for i := range 25 {
			w.Add(i)
		}
		if w.Len() != 10 || w.Shed() != 15 {
			t.Fatalf("shed writer holds %d, shed %d", w.Len(), w.Shed())
		}
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "spool")
	sp, err := OpenSpool[int](path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	tab := &flakyTable{down: true}
	w := NewWriter(WriterOptions[int]{Name: "j", Write: tab.write, Limit: 10, Spool: sp})
	for i := range 100 {
		w.Add(i)
	}
	if w.Len() != 100 || sp.Len() != 90 || w.Lost() != 0 {
		t.Fatalf("writer holds %d, spool %d, lost %d", w.Len(), sp.Len(), w.Lost())
	}
	// Stopped with the store still failing: memory goes to the spool too.
	if err := w.final(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	sp, err = OpenSpool[int](path, 4096)
	if err != nil || sp.Len() != 100 {
		t.Fatalf("reopened spool: %d rows, %v", sp.Len(), err)
	}
	tab.setDown(false)
	w = NewWriter(WriterOptions[int]{Name: "j", Write: tab.write, Limit: 10, Spool: sp})
	w.Add(100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := tab.written()
	if len(got) != 101 {
		t.Fatalf("%d rows written, want 101", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("row %d is %d", i, v)
		}
	}
}
