package whatsapp

import (
	"github.com/remedy-run/remedy/webhook"

	"context"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"testing"
	"time"
)

// SendText through the real client: device list, pre-key bundle, Signal encryption,
// the message node and the server's ack. Refused while disconnected, and a server error
// comes back as an error (so the outbox keeps the message).
func TestSendTextEncryptsAndIsAcknowledged(t *testing.T) {
	s := fakeServer(t)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, text := range []string{"first", "second"} {
		if err := c.SendText(ctx, "+62 811-0000-0002", text); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
	}
	ms := s.Messages()
	if len(ms) != 2 || ms[0].To != "6281100000002" || ms[0].Ciphertexts < 1 || ms[0].ID == ms[1].ID {
		t.Fatalf("server saw %+v", ms)
	}
	s.RefuseMessages(true)
	if err := c.SendText(ctx, "+6281100000002", "refused"); err == nil {
		t.Fatal("a refused message reported as sent")
	}
	s.RefuseMessages(false)
	c.cli.Disconnect()
	if err := c.SendText(ctx, "+6281100000002", "offline"); err == nil {
		t.Fatal("sent while disconnected")
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("server has %d messages", n)
	}
}

// A message from a phone, Signal-encrypted by the phone's own session, is decrypted by
// the real client and handed to Options.Messages with its sender; the second message
// rides the established session (type msg, not pkmsg).
func TestIncomingMessagesAreDecryptedAndHandedOver(t *testing.T) {
	s := fakeServer(t)
	rec := newRecorder()
	got := make(chan [3]string, 4)
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour, Messages: func(m webhook.Message) {
			got <- [3]string{m.ID, m.From, m.Text}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	phone, err := wafake.NewPhone(context.Background(), t.TempDir(), "6281100000009")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	ctx := context.Background()
	for _, text := range []string{"!status", "!alerts"} {
		var id string
		s.Each(func(fc *wafake.Conn) {
			if id, err = phone.Send(ctx, fc, c.Client().Store, text); err != nil {
				t.Fatal(err)
			}
		})
		select {
		case m := <-got:
			if m != [3]string{id, "6281100000009", text} {
				t.Fatalf("got %q, want %q from 6281100000009 (id %s)", m, text, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q never arrived", text)
		}
	}
}
