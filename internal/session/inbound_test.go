package session

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/store"
)

// flakyQueue is an inbound queue whose enqueues fail while down.
type flakyQueue struct {
	mu    sync.Mutex
	down  bool
	items []string
}

func (q *flakyQueue) enqueue(_ context.Context, m chat.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.down {
		return errors.New("database or disk is full")
	}
	q.items = append(q.items, m.Text)
	return nil
}

func (q *flakyQueue) set(down bool) { q.mu.Lock(); q.down = down; q.mu.Unlock() }

func (q *flakyQueue) queued() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.items...)
}

// Randomized, seeded: messages arrive while the queue fails and recovers at random, and
// the keeper is stopped and started again (a restart, the spool kept) at random. Every
// message receive accepted (the ones WhatsApp would be told arrived) is queued exactly
// once, in arrival order; one refused (the spool full) is not acknowledged, and only
// then. The backlog is reported while messages wait and cleared after.
func TestInboundKeeperLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, 2))
		path := filepath.Join(t.TempDir(), "spool")
		q := &flakyQueue{}
		var mu sync.Mutex
		var reports []int
		backlog := func(_ string, rows int, _ error) { mu.Lock(); reports = append(reports, rows); mu.Unlock() }
		var acked []string
		refused := 0
		var k *inboundKeeper
		var stop context.CancelFunc
		var wg sync.WaitGroup
		start := func() {
			sp, err := store.OpenSpool[chat.Message](path, 2048) // small: it fills up
			if err != nil {
				t.Fatal(err)
			}
			k = newInboundKeeper(sp, "inbound", q.enqueue, backlog, slog.New(slog.DiscardHandler))
			var ctx context.Context
			ctx, stop = context.WithCancel(context.Background())
			wg.Go(func() { k.run(ctx) })
		}
		halt := func() {
			stop()
			wg.Wait()
			k.spool.Close()
		}
		start()
		for i := range 400 {
			switch rng.IntN(20) {
			case 0:
				q.set(true)
			case 1, 2:
				q.set(false)
			case 3:
				halt()
				start()
			}
			text := "m" + strconv.Itoa(i)
			if err := k.receive(context.Background(), chat.Message{ID: text, Text: text}); err == nil {
				acked = append(acked, text)
			} else {
				refused++
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		q.set(false)
		time.Sleep(10 * time.Second) // past the longest backoff: the spool is moved
		synctest.Wait()
		if got := q.queued(); !slices.Equal(got, acked) {
			t.Fatalf("seed %d: queued %d messages, %d acknowledged; first difference at %d", seed, len(got), len(acked), firstDiff(got, acked))
		}
		if k.len() != 0 {
			t.Fatalf("seed %d: %d messages left in the spool", seed, k.len())
		}
		halt()
		mu.Lock()
		defer mu.Unlock()
		if len(reports) > 0 && reports[len(reports)-1] != 0 {
			t.Fatalf("seed %d: the backlog was not cleared: %v", seed, reports)
		}
		t.Logf("%d acknowledged, %d refused with the spool full, %d backlog reports", len(acked), refused, len(reports))
	})
}

// Messages moved from the spool to a queue that commits without waiting for the disk
// (the daemon's, whose receipts wait at the socket instead) leave the spool only once
// the queue's commits are on disk: a failed sync keeps them in the spool, to be moved
// again (twice at worst, never lost).
func TestSpooledMessagesLeaveOnlyOnceSynced(t *testing.T) {
	sp, err := store.OpenSpool[chat.Message](filepath.Join(t.TempDir(), "spool"), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	q := &flakyQueue{}
	var syncErr error
	syncs := 0
	k := newInboundKeeper(sp, "inbound", q.enqueue, nil, slog.New(slog.DiscardHandler))
	k.sync = func() error { syncs++; return syncErr }
	for _, text := range []string{"a", "b"} {
		if err := sp.Append(chat.Message{ID: text, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	syncErr = errors.New("fsync: input/output error")
	if k.move(ctx) || k.len() != 2 || syncs != 1 {
		t.Fatalf("sync failed: moved, %d left in the spool after %d syncs; want both kept", k.len(), syncs)
	}
	syncErr = nil
	if !k.move(ctx) || k.len() != 0 || syncs != 2 {
		t.Fatalf("synced: %d left in the spool after %d syncs", k.len(), syncs)
	}
	if got := q.queued(); !slices.Equal(got, []string{"a", "b", "a", "b"}) {
		t.Fatalf("queued %v: each twice, in order (the first move's were not known on disk)", got)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
