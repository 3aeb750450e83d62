package store

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Randomized, seeded: a spool under appends, peeks, partial drops and reopenings (a
// restart) holds exactly the rows appended and not dropped, in order; a full spool
// refuses an append and keeps what it has.
func TestSpoolPeekDrop(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	path := filepath.Join(t.TempDir(), "spool")
	sp, err := OpenSpool[int](path, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sp.Close() }()
	var model []int
	next := 0
	for step := range 2000 {
		switch op := rng.IntN(10); {
		case op < 5:
			err := sp.Append(next)
			if err == nil {
				model = append(model, next)
			} else if err != ErrSpoolFull {
				t.Fatalf("step %d: append: %v", step, err)
			}
			next++
		case op < 8:
			n := rng.IntN(5)
			got, err := sp.Peek(n)
			if err != nil {
				t.Fatal(err)
			}
			want := model[:min(n, len(model))]
			if !slices.Equal(got, want) {
				t.Fatalf("step %d (seed %d): peek %d = %v, want %v", step, seed, n, got, want)
			}
			k := rng.IntN(len(got) + 1) // a move that stored only some of them
			if err := sp.Drop(k); err != nil {
				t.Fatal(err)
			}
			model = model[k:]
		case op < 9:
			sp.Close()
			if sp, err = OpenSpool[int](path, 512); err != nil {
				t.Fatal(err)
			}
		}
		if sp.Len() != len(model) {
			t.Fatalf("step %d (seed %d): len %d, want %d", step, seed, sp.Len(), len(model))
		}
	}
	all, err := sp.Peek(1 << 20)
	if err != nil || !slices.Equal(all, model) {
		t.Fatalf("end: %v %v, want %v", all, err, model)
	}
}
