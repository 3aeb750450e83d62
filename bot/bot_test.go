package bot_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/internal/bottest"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// recorder is a Handler that is also an EventHandler: it answers each message with
// Send, remembering the id Send returned, and records the events it is given.
type recorder struct {
	mu     sync.Mutex
	sent   []string
	events []bot.Event
}

func (r *recorder) HandleMessage(ctx context.Context, b *bot.Bot, m bot.Message) error {
	id, err := b.Send(ctx, bot.Outgoing{To: m.Chat, Text: "got " + m.Text, ReplyTo: m.ID, IdempotencyKey: "reply-" + m.ID})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.sent = append(r.sent, id)
	r.mu.Unlock()
	return nil
}

func (r *recorder) HandleEvent(ctx context.Context, b *bot.Bot, e bot.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

// An embedded bot: Send returns the id WhatsApp knows the message by, the customer's
// read receipt for it reaches the handler's HandleEvent, a message Send cannot send is
// ErrInvalid, and Client is the live whatsmeow client.
func TestSendAndReceipts(t *testing.T) {
	h := &recorder{}
	b, s := bottest.Start(t, bot.Config{Handler: h})
	ctx := context.Background()
	if b.Addr() == "" {
		t.Fatal("no address after Listen")
	}
	if _, err := b.Send(ctx, bot.Outgoing{To: "6281100000077"}); !errors.Is(err, bot.ErrInvalid) {
		t.Fatalf("nothing to send: %v", err)
	}
	if _, err := b.Send(ctx, bot.Outgoing{To: "not a number", Text: "x"}); !errors.Is(err, bot.ErrInvalid) {
		t.Fatalf("a bad recipient: %v", err)
	}
	// Media WhatsApp does not take (the API's 415 and 413) is invalid too, as Send's
	// doc says; before, it was an internal type a bot could not test for.
	if _, err := b.Send(ctx, bot.Outgoing{To: "6281100000077", Media: &bot.Media{Kind: "image", MIME: "image/gif", Data: []byte("GIF89a")}}); !errors.Is(err, bot.ErrInvalid) {
		t.Fatalf("a GIF as an image: %v", err)
	}
	if _, err := b.Send(ctx, bot.Outgoing{To: "6281100000077", Media: &bot.Media{Kind: "sticker", MIME: "image/webp", Data: make([]byte, 600<<10)}}); !errors.Is(err, bot.ErrInvalid) {
		t.Fatalf("a sticker over its limit: %v", err)
	}
	p, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s.Each(func(fc *wafake.Conn) {
		if _, err := p.Send(ctx, fc, b.Client().Store, "hello"); err != nil {
			t.Fatal(err)
		}
	})
	var id string
	bottest.Eventually(t, "the reply at the server", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, m := range s.Messages() {
			if len(h.sent) == 1 && m.ID == h.sent[0] {
				id = m.ID
				return true
			}
		}
		return false
	})
	s.Each(func(fc *wafake.Conn) {
		if err := fc.Send(waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{"from": p.JID, "id": id, "type": "read",
			"t": strconv.FormatInt(time.Now().Unix(), 10)}}); err != nil {
			t.Fatal(err)
		}
	})
	bottest.Eventually(t, "the read receipt at HandleEvent", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.Type == "receipt" && e.Receipt.Status == "read" && len(e.Receipt.MessageIDs) == 1 && e.Receipt.MessageIDs[0] == id {
				return true
			}
		}
		return false
	})
}

// The end of every message the bot sends reaches HandleEvent as a typed send_outcome,
// through the real client and the fake server: "sent" once the server acknowledged it
// (with its id, chat, key and attempts), "failed" with the reason once WhatsApp refused
// it (403: not authorized) and it was dead-lettered. Before, nothing called Notify: the
// bot never heard of either.
func TestSendOutcomesReachTheHandler(t *testing.T) {
	h := &recorder{}
	b, s := bottest.Start(t, bot.Config{Handler: h})
	ctx := context.Background()
	s.RefuseTo("6281100000099@s.whatsapp.net", 403)
	okID, err := b.Send(ctx, bot.Outgoing{To: "+6281100000088", Text: "hi", IdempotencyKey: "k-ok"})
	if err != nil {
		t.Fatal(err)
	}
	badID, err := b.Send(ctx, bot.Outgoing{To: "+6281100000099", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	outcome := func(id string) *bot.SendOutcome {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.Type == "send_outcome" && e.SendOutcome != nil && e.SendOutcome.ID == id {
				return e.SendOutcome
			}
		}
		return nil
	}
	bottest.Eventually(t, "both outcomes at HandleEvent", func() bool { return outcome(okID) != nil && outcome(badID) != nil })
	if o := outcome(okID); o.Status != "sent" || o.Chat != "6281100000088@s.whatsapp.net" || o.IdempotencyKey != "k-ok" || o.Attempts != 1 || o.Reason != "" {
		t.Fatalf("sent: %+v", o)
	}
	if o := outcome(badID); o.Status != "failed" || !strings.HasPrefix(o.Reason, "refused") || o.Chat != "6281100000099@s.whatsapp.net" {
		t.Fatalf("failed: %+v", o)
	}
	h.mu.Lock()
	n := 0
	for _, e := range h.events {
		if e.Type == "send_outcome" {
			n++
		}
	}
	h.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d outcomes for 2 messages", n)
	}
}

// Every message a bot sends ends with its send_outcome, whatever its idempotency key: a
// key in the form remedy gives a webhook's {"reply": …} ("reply:<id>", natural for a
// bot's own reply) is no exception, since an in-process bot has no reply_outcomes to set
// and sends every answer itself.
func TestEverySendHasAnOutcomeWhateverItsKey(t *testing.T) {
	h := &recorder{}
	b, _ := bottest.Start(t, bot.Config{Handler: h})
	ctx := context.Background()
	id, err := b.Send(ctx, bot.Outgoing{To: "+6281100000088", Text: "your order", IdempotencyKey: "reply:3EB0C431D2A1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Send(ctx, bot.Outgoing{To: "+6281100000088", Text: "and another", IdempotencyKey: "k-2"})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := func() map[string]string {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[string]string{}
		for _, e := range h.events {
			if e.Type == "send_outcome" && e.SendOutcome != nil {
				out[e.SendOutcome.ID] = e.SendOutcome.Status
			}
		}
		return out
	}
	bottest.Eventually(t, "both messages' outcomes", func() bool { o := outcomes(); return o[id] != "" && o[other] != "" })
	if got := outcomes(); got[id] != "sent" {
		t.Fatalf("outcomes %v: %s, sent with the key reply:3EB0C431D2A1, not sent", got, id)
	}
}
