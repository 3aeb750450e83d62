package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
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
			k = newInboundKeeper(sp, q.enqueue, backlog, slog.New(slog.DiscardHandler))
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
	k := newInboundKeeper(sp, q.enqueue, nil, slog.New(slog.DiscardHandler))
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

// Incoming WhatsApp messages under every store fault, with the real client against the
// fake server: each message WhatsApp was told arrived (its receipt sent) reaches the
// bot's handler once the fault ends; while it lasts they wait in the inbound spool. One
// daemon meets the faults one after another (each ends before the next), as a bot's
// host would.
func TestIncomingMessagesSurviveStoreFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("holds each store fault")
	}
	var mu sync.Mutex
	handled := map[string]int{}
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		handled[m.Text]++
		mu.Unlock()
	}))
	defer bot.Close()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		c.WhatsApp.Handler = &config.Handler{URL: bot.URL}
		c.HealthInterval = 200 * time.Millisecond // the I/O error fault waits for readiness to see it
	})
	r.d.inbound.mu.Lock()
	r.d.inbound.bound = 300 * time.Millisecond // each fault outlasts it many times
	r.d.inbound.mu.Unlock()
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000042")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	texts := map[string]string{} // message id -> text
	send := func(text string) {
		s.Each(func(fc *wafake.Conn) {
			id, err := phone.Send(ctx, fc, r.d.wa.Client().Store, text)
			if err != nil {
				t.Fatal(err)
			}
			texts[id] = text
		})
	}
	receipted := func() []string { // each message once, though a receipt may come twice
		var out []string
		seen := map[string]bool{}
		for _, id := range s.Receipts() {
			if texts[id] != "" && !seen[id] {
				seen[id] = true
				out = append(out, texts[id])
			}
		}
		return out
	}
	allHandled := func(last string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			rs := receipted()
			for _, text := range rs {
				if handled[text] == 0 {
					return false
				}
			}
			return slices.Contains(rs, last)
		}
	}
	send("before")
	r.eventually("the first message handled", allHandled("before"))
	var table []string
	for i, f := range storeFaults {
		clear := f.apply(t, r)
		const during = 8
		want := len(receipted()) + during
		for j := range during {
			send(fmt.Sprintf("fault-%d-%d", i, j))
		}
		r.eventually(f.name+": every message sent during the fault kept and acknowledged", func() bool {
			return len(receipted()) >= want
		})
		spooled := r.d.inbound.len()
		clear()
		after := fmt.Sprintf("after-%d", i)
		send(after)
		r.eventually(f.name+": every acknowledged message handled", allHandled(after))
		table = append(table, fmt.Sprintf("| %s | %d | %d acknowledged | %d spooled during the fault | all handled after |",
			f.name, during, during, spooled))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("\n| fault | messages during it | receipts | spool | after |\n|---|---|---|---|---|\n%s\n%d messages acknowledged, %d handled",
		strings.Join(table, "\n"), len(receipted()), len(handled))
}
