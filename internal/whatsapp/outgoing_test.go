package whatsapp

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"slices"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/chat"
)

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Every kind of message of the send API goes through the real client to the fake
// server: its own id, the node type WhatsApp routes by, media uploaded to the media host
// on loopback (token = SHA-256 of the encrypted file, as whatsmeow computes it), a group
// encrypted for its members, and the recipients' receipts coming back as statuses.
func TestSendMessageKindsThroughTheRealClient(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	s.AutoReceipts("", "read")
	s.AddGroup("120363000000000001", "6281100000002", "6281100000003")
	rec := newRecorder()
	type rcpt struct{ id, status string }
	receipts := make(chan rcpt, 64)
	c, err := Open(context.Background(), Options{StorePath: pairedStore(t), Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour, Receipts: func(ids []string, status string, at time.Time) {
			for _, id := range ids {
				receipts <- rcpt{id, status}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user, group := "6281100000002@s.whatsapp.net", "120363000000000001@g.us"
	img := pngBytes(t)
	msgs := []struct {
		m     chat.Outgoing
		media []byte
		typ   string
	}{
		{chat.Outgoing{Chat: user, Text: "hello"}, nil, "text"},
		{chat.Outgoing{Chat: user, Text: "@6281100000003 see above", ReplyTo: "3EB0AAAA", Mentions: []string{"6281100000003@s.whatsapp.net"}}, nil, "text"},
		{chat.Outgoing{Chat: user, Reaction: &chat.Reaction{MessageID: "3EB0AAAA", Emoji: "👍"}}, nil, "reaction"},
		{chat.Outgoing{Chat: user, Text: "a picture", Media: &chat.Media{Kind: "image", MIME: "image/png", Size: int64(len(img))}}, img, "media"},
		{chat.Outgoing{Chat: user, Media: &chat.Media{Kind: "document", MIME: "application/pdf", FileName: "r.pdf", Size: 5}}, []byte("%PDF-"), "media"},
		{chat.Outgoing{Chat: group, Text: "hello group", ReplyTo: "3EB0BBBB", ReplyToSender: "6281100000003@s.whatsapp.net"}, nil, "text"},
	}
	var ids []string
	for i, x := range msgs {
		x.m.ID = c.Client().GenerateMessageID()
		ids = append(ids, x.m.ID)
		if err := c.SendMessage(ctx, x.m, x.media); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	got := s.Messages()
	if len(got) != len(msgs) {
		t.Fatalf("server has %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if m.ID != ids[i] || m.Type != msgs[i].typ || m.Ciphertexts < 1 {
			t.Errorf("message %d: %+v, want id %s type %s", i, m, ids[i], msgs[i].typ)
		}
	}
	if g := got[5]; g.To != "120363000000000001" || !slices.Contains(g.Participants, "6281100000003@s.whatsapp.net") {
		t.Errorf("group message %+v", g)
	}
	ups := s.Uploads()
	if len(ups) != 2 || ups[0].Kind != "image" || ups[1].Kind != "document" || !ups[0].TokenOK || !ups[1].TokenOK ||
		ups[0].Size <= len(img) { // AES-CBC padding and a 10-byte MAC
		t.Fatalf("uploads %+v", ups)
	}
	// delivered and read for each direct message; each group member's receipt for the group's
	want := map[rcpt]bool{}
	for _, id := range ids {
		want[rcpt{id, chat.StatusDelivered}], want[rcpt{id, chat.StatusRead}] = true, true
	}
	for len(want) > 0 {
		select {
		case r := <-receipts:
			delete(want, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("receipts missing: %v", want)
		}
	}
	// whatsmeow acknowledges receipts on goroutines; closing under one races inside it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if sent, acked := s.ReceiptAcks(); sent == acked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client did not acknowledge every receipt")
		}
	}
}

// Refusals come back as permanent "refused" errors with the server's code (the ack's
// error, a group the bot left); a lost connection is "not_connected", worth a retry.
func TestSendMessageFailuresAreClassified(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	s.AddGroup("120363000000000009", "6281100000002")
	s.LeaveGroup("120363000000000009")
	s.RefuseTo("6281100000004@s.whatsapp.net", 463)
	rec := newRecorder()
	c := open(t, s, rec)
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	send := func(to string) *chat.SendError {
		err := c.SendMessage(ctx, chat.Outgoing{ID: c.Client().GenerateMessageID(), Chat: to, Text: "x"}, nil)
		var se *chat.SendError
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v is no SendError", to, err)
		}
		return se
	}
	if e := send("6281100000004@s.whatsapp.net"); e.Reason != chat.ReasonRefused || e.Code != 463 || !e.Permanent {
		t.Fatalf("refused user: %+v", e)
	}
	if e := send("120363000000000009@g.us"); e.Reason != chat.ReasonRefused || e.Code != 403 || !e.Permanent {
		t.Fatalf("group left: %+v", e)
	}
	if e := send("120363000000000404@g.us"); e.Reason != chat.ReasonRefused || e.Code != 404 {
		t.Fatalf("no such group: %+v", e)
	}
	s.RefuseMessages(true)
	if e := send("6281100000002@s.whatsapp.net"); e.Reason != chat.ReasonServerError || e.Permanent {
		t.Fatalf("server error: %+v", e)
	}
	s.RefuseMessages(false)
	c.cli.Disconnect()
	if e := send("6281100000002@s.whatsapp.net"); e.Reason != chat.ReasonNotConnected || e.Permanent {
		t.Fatalf("offline: %+v", e)
	}
}
