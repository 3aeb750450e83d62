package chat

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Recipients: what each form becomes, and what is refused (422) — never a panic or
// an address WhatsApp does not have.
func TestParseRecipientForms(t *testing.T) {
	t.Parallel()
	ok := map[string]string{
		"+62 811-0000-0002":             "6281100000002@s.whatsapp.net",
		"(62) 811.0000.0002":            "6281100000002@s.whatsapp.net",
		"6281100000002@s.whatsapp.net":  "6281100000002@s.whatsapp.net",
		"123456789012345@lid":           "123456789012345@lid",
		"120363000000000001@g.us":       "120363000000000001@g.us",
		"6281100000002-1600000000@g.us": "6281100000002-1600000000@g.us",
	}
	for in, want := range ok {
		if jid, err := ParseRecipient(in); err != nil || jid.String() != want {
			t.Errorf("%q: %v %v, want %s", in, jid, err, want)
		}
	}
	bad := []string{"", "  ", "0811000000", "62+8110000002", "++628110000002", "٦٢٨١١٠٠٠٠٠٠٢", "６２８１１００００００２",
		"12345", strings.Repeat("1", 16), "-@g.us", "1-@g.us", "-1@g.us", "1--2@g.us", "@g.us", strings.Repeat("1", 41) + "@g.us",
		strings.Repeat("1", 41) + "@lid", "abc@lid", "6281100000002:3@s.whatsapp.net", "6281100000002@c.us", "status@broadcast",
		"120363000000000001@g.us:1", strings.Repeat("9", 1<<16)}
	for _, in := range bad {
		if jid, err := ParseRecipient(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%.40q: %v %v, want ErrInvalid", in, jid, err)
		}
	}
}

// An idempotency key names one message: posted again (the recipient spelt another
// way, the media inline instead of by id) it answers the first id and queues nothing;
// reused for a different message it is refused with ErrKeyReused, not answered with
// the first message's id as if that had been sent.
func TestIdempotencyKeyReusedForAnotherMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, db := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	png := []byte("\x89PNG\r\n\x1a\n0000")
	up, err := p.SaveMedia(ctx, Media{Data: png})
	if err != nil {
		t.Fatal(err)
	}
	first, dup, err := p.Enqueue(ctx, Outgoing{To: "+62 811-0000-0002", Text: "hi", Media: &Media{ID: up.ID}, IdempotencyKey: "k"})
	if err != nil || dup {
		t.Fatal(first, dup, err)
	}
	again, dup, err := p.Enqueue(ctx, Outgoing{To: "6281100000002@s.whatsapp.net", Text: "hi", Media: &Media{Data: png}, IdempotencyKey: "k"})
	if err != nil || !dup || again != first {
		t.Fatalf("the same message again: %s %v %v, want %s as a duplicate", again, dup, err, first)
	}
	for _, o := range []Outgoing{
		{To: "6281100000002", Text: "bye", Media: &Media{ID: up.ID}},
		{To: "6281100000009", Text: "hi", Media: &Media{ID: up.ID}},
		{To: "6281100000002", Text: "hi"},
		{To: "6281100000002", Text: "hi", Media: &Media{ID: up.ID}, ReplyTo: "3EB0AAAA"},
	} {
		o.IdempotencyKey = "k"
		if id, _, err := p.Enqueue(ctx, o); !errors.Is(err, ErrKeyReused) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), first) {
			t.Errorf("%+v: %s %v, want ErrKeyReused naming %s", o, id, err, first)
		}
	}
	var n int
	if err := db.Get(ctx, &n, `SELECT count(*) FROM queue_items WHERE queue = 'outbound'`); err != nil || n != 1 {
		t.Fatalf("%d items queued, want 1", n)
	}
}
