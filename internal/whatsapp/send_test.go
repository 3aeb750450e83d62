package whatsapp

import (
	"github.com/remedy-run/remedy/webhook"

	"context"
	"errors"
	"slices"
	"testing"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// SendText through the real client: device list, pre-key bundle, Signal encryption,
// the message node and the server's ack. Refused while disconnected, and a server error
// comes back as an error (so the outbox keeps the message).
func TestSendTextEncryptsAndIsAcknowledged(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	got := make(chan [3]string, 4)
	c, phone := connectedWithPhone(t, s, rec, func(m webhook.Message) error {
		got <- [3]string{m.ID, m.From, m.Text}
		return nil
	})
	ctx := context.Background()
	var err error
	var ids []string
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
		ids = append(ids, id)
	}
	waitReceipts(t, s, ids...)
}

// waitReceipts waits until the client has sent its receipt for each of ids. A test that
// hands messages over waits for it before it ends: the handler returns before whatsmeow
// sends the receipt, and closing the client while it does trips whatsmeow's own race
// between a frame's send and the socket's close.
func waitReceipts(t *testing.T, s *wafake.Server, ids ...string) {
	t.Helper()
	missing := func() []string {
		var out []string
		for _, id := range ids {
			if !slices.Contains(s.Receipts(), id) {
				out = append(out, id)
			}
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); len(missing()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt for %v; receipts %v", missing(), s.Receipts())
		}
	}
}

// A message the application could not keep (Messages returned an error) gets no receipt,
// so a real server delivers it again; the second delivery of the same stanza decrypts
// (the Signal session has moved on: the plaintext comes from whatsmeow's buffer), is
// handed over again, and only then is acknowledged.
func TestMessageNotKeptIsNotAcknowledgedAndComesAgain(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	got := make(chan string, 8)
	refuse := make(chan bool, 1)
	refuse <- true // the first delivery is refused
	c, phone := connectedWithPhone(t, s, rec, func(m webhook.Message) error {
		got <- m.Text
		select {
		case <-refuse:
			return errors.New("database or disk is full")
		default:
			return nil
		}
	})
	ctx := context.Background()
	one, err := phone.Prepare(ctx, c.Client().Store, "one")
	if err != nil {
		t.Fatal(err)
	}
	two, err := phone.Prepare(ctx, c.Client().Store, "two")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(n waBinary.Node) {
		t.Helper()
		s.Each(func(fc *wafake.Conn) {
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
	}
	next := func(want string) { t.Helper(); handedOver(t, got, want) }
	acked := func(id string) bool { return slices.Contains(s.Receipts(), id) }
	waitAcked := func(id string) { t.Helper(); waitReceipt(t, s, id) }
	id1, id2 := one.Attrs["id"].(string), two.Attrs["id"].(string)
	deliver(one)
	next("one") // refused
	deliver(two)
	next("two") // kept
	waitAcked(id2)
	if acked(id1) {
		t.Fatalf("the message that was not kept was acknowledged: receipts %v", s.Receipts())
	}
	deliver(one) // the server's second delivery: the same stanza
	next("one")
	waitAcked(id1)
}

// connectedWithPhone opens a paired connection to s whose incoming texts go to messages,
// waits until it is connected, and makes a phone (6281100000009) that can write to it.
func connectedWithPhone(t *testing.T, s *wafake.Server, rec *recorder, messages func(webhook.Message) error) (*Conn, *wafake.Phone) {
	t.Helper()
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour, Messages: messages})
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
	t.Cleanup(func() { phone.Close() })
	return c, phone
}

// handedOver waits for the next text handed over and checks it.
func handedOver(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case text := <-got:
		if text != want {
			t.Fatalf("handed over %q, want %q", text, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%q never handed over", want)
	}
}

// waitReceipt waits until the server has the client's receipt for id (a safety net of
// 10 s, not a speed limit).
func waitReceipt(t *testing.T, s *wafake.Server, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(s.Receipts(), id); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt for %s; receipts %v", id, s.Receipts())
		}
	}
}
