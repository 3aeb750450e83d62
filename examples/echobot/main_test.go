package main

import (
	"context"
	"sync/atomic"
	"testing"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/remedy-run/remedy/bot"
	"github.com/remedy-run/remedy/internal/bottest"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// The example bot, embedded with package bot, against the fake WhatsApp server and the
// real whatsmeow client: an echo to a private text, an image for "photo" (uploaded to
// the fake media host), an answer to the group command /who in the group (not to an
// address made of the group's id), silence for other group chatter, an answer to a
// location; remedy's own admin command still answered by remedy.
func TestEchoBot(t *testing.T) {
	var handled atomic.Int64
	counted := bot.HandlerFunc(func(ctx context.Context, b *bot.Bot, m bot.Message) error {
		err := Handler{Image: samplePNG}.HandleMessage(ctx, b, m)
		if err == nil {
			handled.Add(1)
		}
		return err
	})
	b, s := bottest.Start(t, bot.Config{Admins: []string{"+6281100000009"}, Handler: counted})
	ctx := context.Background()
	customer, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer customer.Close()
	group := types.NewJID("120363000000000001", types.GroupServer)
	s.AddGroup(group.User, customer.JID.User, "6281234567890")
	send := func(msg *waE2E.Message, inGroup bool) {
		s.Each(func(fc *wafake.Conn) {
			n, err := customer.PrepareMessage(ctx, b.Client().Store, msg)
			if err != nil {
				t.Fatal(err)
			}
			if inGroup {
				n.Attrs["from"], n.Attrs["participant"] = group, customer.JID
			}
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
	}
	sentTo := func(to string) int {
		n := 0
		for _, m := range s.Messages() {
			if m.To == to {
				n++
			}
		}
		return n
	}
	send(&waE2E.Message{Conversation: proto.String("hello")}, false)
	bottest.Eventually(t, "the echo", func() bool { return sentTo(customer.JID.User) == 1 })
	send(&waE2E.Message{Conversation: proto.String("anyone here?")}, true) // not for the bot
	send(&waE2E.Message{Conversation: proto.String("/who")}, true)
	bottest.Eventually(t, "the group's answer", func() bool { return sentTo(group.User) == 1 })
	send(&waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(-8.65), DegreesLongitude: proto.Float64(115.21)}}, false)
	bottest.Eventually(t, "the answer to a location", func() bool { return sentTo(customer.JID.User) == 2 })
	send(&waE2E.Message{Conversation: proto.String("photo")}, false)
	bottest.Eventually(t, "the image reply", func() bool { return sentTo(customer.JID.User) == 3 })
	if up := s.Uploads(); len(up) != 1 || up[0].Kind != "image" || !up[0].TokenOK {
		t.Fatalf("uploads %+v, want the image", up)
	}
	// Every message was handled, and every answer is at the server: the chatter got none.
	bottest.Eventually(t, "all five handled", func() bool { return handled.Load() == 5 })
	if n := sentTo(group.User); n != 1 || len(s.Messages()) != 4 {
		t.Fatalf("%d messages to the group, want 1 (the /who answer); %d in all, want 4", n, len(s.Messages()))
	}
	// remedy's own command from the admin is remedy's: answered, never the bot's.
	admin, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000009")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	s.Each(func(fc *wafake.Conn) {
		if _, err := admin.Send(ctx, fc, b.Client().Store, "!status"); err != nil {
			t.Fatal(err)
		}
	})
	bottest.Eventually(t, "remedy's answer to the admin", func() bool { return sentTo(admin.JID.User) == 1 })
	if handled.Load() != 5 {
		t.Fatalf("the bot was handed remedy's command")
	}
	for _, m := range s.Messages() {
		if m.To == "120363000000000001" && len(m.Participants) == 0 {
			t.Fatalf("the group answer was not encrypted for the group's members: %+v", m)
		}
	}
}
