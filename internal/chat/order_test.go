package chat

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/webhook"
)

// orderBot records what the inbound queue hands it: per chat, the deliveries in the
// order they were handled, and whether two of one chat were ever in its hands at once.
// It fails a delivery's first tries at random (at most three times, so that nothing is
// dead-lettered) and takes a random while over each.
type orderBot struct {
	rng      func(n int) int
	mu       sync.Mutex
	inFlight map[string]int
	fails    map[string]int
	handled  map[string][]string // chat → ids, in handling order
	overlap  string              // a chat seen twice at once
	most     int                 // the most deliveries in hand at once, over all chats
	now      int
}

var errTryAgain = errors.New("not now")

func (b *orderBot) take(chat, id string) error {
	b.mu.Lock()
	b.inFlight[chat]++
	b.now++
	b.most = max(b.most, b.now)
	if b.inFlight[chat] > 1 && b.overlap == "" {
		b.overlap = chat
	}
	fail := b.fails[id] < 3 && b.rng(3) == 0
	if fail {
		b.fails[id]++
	}
	wait := time.Duration(1+b.rng(50)) * time.Millisecond
	b.mu.Unlock()
	time.Sleep(wait) // fake time (synctest): the others get their turn meanwhile
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight[chat]--
	b.now--
	if fail {
		return errTryAgain
	}
	b.handled[chat] = append(b.handled[chat], id)
	return nil
}

func (b *orderBot) Handle(_ context.Context, m Message) (string, error) {
	return "", b.take(m.Chat, m.ID)
}

func (b *orderBot) HandleEvent(_ context.Context, e webhook.Event) error {
	switch {
	case e.Edit != nil:
		return b.take(e.Edit.Chat, e.Edit.ID)
	case e.Receipt != nil:
		return b.take(e.Receipt.Chat, e.Receipt.MessageIDs[0])
	}
	return fmt.Errorf("unexpected delivery %s", e.Type)
}

// Order per chat, over seeded random traffic: messages, edits and receipts of a few
// chats interleaved, handlers that fail and are retried and take random times. Every
// delivery reaches the handler once successfully, each chat's in the order they were
// queued, never two of one chat at once; and different chats do go in parallel (the
// four workers are used), so the order does not cost the queue its concurrency.
func TestInboundKeepsEachChatsOrder(t *testing.T) {
	t.Parallel()
	seeds := 6
	if testing.Short() || raceEnabled {
		seeds = 2
	}
	base := uint64(time.Now().UnixNano())
	for i := range seeds {
		seed := base + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 22))
				var rmu sync.Mutex
				bot := &orderBot{inFlight: map[string]int{}, fails: map[string]int{}, handled: map[string][]string{},
					rng: func(n int) int { rmu.Lock(); defer rmu.Unlock(); return rng.IntN(n) }}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				e := newPipelineEnv(t, ctx, bot, nil)
				chats := 2 + bot.rng(5)
				want := map[string][]string{}
				n := 30 + bot.rng(50)
				for k := range n {
					c := fmt.Sprintf("62811000%05d@s.whatsapp.net", bot.rng(chats))
					id := fmt.Sprintf("d%d", k)
					var err error
					switch bot.rng(5) {
					case 0:
						err = e.p.Notify(ctx, webhook.Event{Type: webhook.TypeEdit, Time: time.Now(), Edit: &webhook.Edit{ID: id, Chat: c, Text: "edited"}})
					case 1:
						err = e.p.Notify(ctx, webhook.Event{Type: webhook.TypeReceipt, Time: time.Now(), Receipt: &webhook.Receipt{MessageIDs: []string{id}, Chat: c, Status: "read"}})
					default:
						err = e.p.Receive(ctx, Message{ID: id, Chat: c, From: "6281100000099", Text: "hi", Kind: webhook.KindText})
					}
					if err != nil {
						t.Fatal(err)
					}
					want[c] = append(want[c], id)
				}
				done := make(chan struct{})
				go func() { e.p.Run(ctx); close(done) }()
				for {
					synctest.Wait()
					bot.mu.Lock()
					got := 0
					for _, ids := range bot.handled {
						got += len(ids)
					}
					bot.mu.Unlock()
					if got >= n {
						break
					}
					time.Sleep(100 * time.Millisecond) // fake time: retries fall due
				}
				cancel()
				<-done
				if bot.overlap != "" {
					t.Fatalf("seed %d: two deliveries of chat %s were handled at once", seed, bot.overlap)
				}
				for c, ids := range want {
					if fmt.Sprint(bot.handled[c]) != fmt.Sprint(ids) {
						t.Fatalf("seed %d: chat %s handled %v, queued %v", seed, c, bot.handled[c], ids)
					}
				}
				if len(want) > 1 && bot.most < 2 {
					t.Fatalf("seed %d: %d chats, yet never two deliveries in hand at once", seed, len(want))
				}
			})
		})
	}
}
