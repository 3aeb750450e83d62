package chat

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/webhook"
)

// answerer answers every message with a reply and records the other deliveries.
type answerer struct {
	mu       sync.Mutex
	outcomes []webhook.SendOutcome
}

func (h *answerer) Handle(ctx context.Context, m Message) (string, error) { return "pong", nil }
func (h *answerer) HandleEvent(ctx context.Context, e webhook.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.SendOutcome != nil {
		h.outcomes = append(h.outcomes, *e.SendOutcome)
	}
	return nil
}

// A message the bot sent through the send API ends with one send_outcome; the answer
// it gave as {"reply": …} gets one only when the handler asked for it (ReplyOutcomes:
// whatsapp.handler.reply_outcomes): for a bot that answers every message it was a second
// delivery per message.
func TestReplyOutcomesOnlyWhenAsked(t *testing.T) {
	for _, asked := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			w, h := &wire{}, &answerer{}
			p, err := NewPipeline(ctx, PipelineOptions{DB: db, Sender: w, Handler: h, SendOutcomes: true, ReplyOutcomes: asked,
				Limits: SendLimits{PerMinute: 6000, Burst: 100, ChatPerMinute: 6000, ChatBurst: 100}})
			if err != nil {
				t.Fatal(err)
			}
			go p.Run(ctx)
			const chat = "6282200000002@s.whatsapp.net"
			if err := p.Receive(ctx, Message{ID: "3EB0AAA", From: "6282200000002", Chat: chat, Text: "ping"}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := p.Enqueue(ctx, Outgoing{To: chat, Text: "your order shipped", IdempotencyKey: "order-1"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			w.mu.Lock()
			sent := len(w.sent)
			w.mu.Unlock()
			h.mu.Lock()
			var keys []string
			for _, o := range h.outcomes {
				if o.Status != webhook.OutcomeSent {
					t.Fatalf("outcome %+v", o)
				}
				keys = append(keys, o.IdempotencyKey)
			}
			h.mu.Unlock()
			slices.Sort(keys)
			want := []string{"order-1"}
			if asked {
				want = []string{"order-1", ReplyKeyPrefix + "3EB0AAA"}
			}
			if sent != 2 || !slices.Equal(keys, want) {
				t.Fatalf("reply outcomes asked %v: %d sent, outcomes for %q; want 2 sent, outcomes for %q", asked, sent, keys, want)
			}
		})
	}
}
