package chat

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

// Incoming messages are handed over at least once: after a crash between the handler's
// answer and the item's completion the same message comes again, and the handler may
// answer differently (an LLM). Whatever the number of deliveries, each message is
// answered once, with the first answer, through the send path (an id and a status); an
// answer the send path refuses dead-letters the message at once with the reason.
func TestEachMessageIsAnsweredOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		db, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "remedy.db"), Schema: store.RemedySchema})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		w := &wire{}
		var calls atomic.Int32
		p, err := NewPipeline(ctx, PipelineOptions{DB: db, Sender: w, MediaDir: t.TempDir(),
			Limits: SendLimits{PerMinute: 6000, Burst: 100, ChatPerMinute: 6000, ChatBurst: 100},
			Tune:   func(o *queue.Options) { o.Workers = 1 },
			Handler: HandlerFunc(func(ctx context.Context, m Message) (string, error) {
				n := calls.Add(1)
				if m.Text == "long" {
					return strings.Repeat("x", MaxText+1), nil
				}
				return fmt.Sprintf("answer %d to %s", n, m.Text), nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		go p.Run(ctx)
		const chat = "6282200000002@s.whatsapp.net"
		for range 3 { // the same message, delivered three times
			if err := p.Receive(ctx, Message{ID: "3EB0AAA", From: "6282200000002", Chat: chat, Text: "hi"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if err := p.Receive(ctx, Message{ID: "3EB0BBB", From: "6282200000002", Chat: chat, Text: "long"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		w.mu.Lock()
		sent := append([]Outgoing(nil), w.sent...)
		w.mu.Unlock()
		if calls.Load() != 4 || len(sent) != 1 || sent[0].Text != "answer 1 to hi" || sent[0].Chat != chat {
			t.Fatalf("%d handler calls; sent %+v; want one answer, the first", calls.Load(), sent)
		}
		if st, err := p.MessageStatus(ctx, sent[0].ID); err != nil || st.Status != StatusSent {
			t.Fatalf("the answer's status: %+v %v", st, err)
		}
		dead, err := queue.DeadLetters(ctx, db, "inbound", true)
		if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].Reason, "at most 65536") {
			t.Fatalf("the message with an unsendable answer: dead letters %+v %v; want one, at once, with the reason", dead, err)
		}
	})
}
