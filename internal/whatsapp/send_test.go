package whatsapp

import (
	"context"
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
