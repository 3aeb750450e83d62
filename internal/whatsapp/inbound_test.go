package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// Every message kind a phone sends, encrypted for real and decrypted by the real
// whatsmeow client, reaches Options.Messages in the documented shape: text with a quote
// and mentions, image (media reference kept for the download URL), document, location,
// contact, reaction, a group message with its sender's name; a bare protocol message is
// not handed on. The JSON a handler receives is pinned per kind.
func TestEveryMessageKindIsTyped(t *testing.T) {
	t.Parallel()
	s := fakeServer(t)
	rec := newRecorder()
	got := make(chan webhook.Message, 16)
	store := pairedStore(t)
	c, err := Open(context.Background(), Options{StorePath: store, Events: rec.add, HTTPClient: s.HTTPClient(),
		Watchdog: time.Hour, Probe: time.Hour, Messages: func(m webhook.Message) error { got <- m; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Start(context.Background())
	rec.wait(t, "WA_CONNECTED")
	ctx := context.Background()
	phone, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	group := types.NewJID("120363000000000001", types.GroupServer)
	send := func(msg *waE2E.Message, inGroup bool) string {
		var id string
		s.Each(func(fc *wafake.Conn) {
			n, err := phone.PrepareMessage(ctx, c.Client().Store, msg)
			if err != nil {
				t.Fatal(err)
			}
			if inGroup {
				n.Attrs["from"], n.Attrs["participant"] = group, phone.JID
			}
			id = n.Attrs["id"].(string)
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
		return id
	}
	receive := func() webhook.Message {
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message handed on")
		}
		return webhook.Message{}
	}
	sha := make([]byte, 32)
	cases := []struct {
		name    string
		msg     *waE2E.Message
		inGroup bool
		want    string // the delivery's JSON without id, time and the varying fields
	}{
		{"quoted text with a mention", &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("@6281100000009 see above"),
			ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("3EB0QUOTED"), MentionedJID: []string{"6281100000009@s.whatsapp.net"}}}}, false,
			`{"kind":"text","text":"@6281100000009 see above","quoted_id":"3EB0QUOTED","mentions":["6281100000009@s.whatsapp.net"]}`},
		{"image", &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("my receipt"), Mimetype: proto.String("image/jpeg"),
			FileLength: proto.Uint64(2048), FileSHA256: sha, DirectPath: proto.String("/v/t62/abc"), MediaKey: make([]byte, 32)}}, false,
			`{"kind":"image","text":"my receipt","media":{"url":"/api/v1/incoming/ID/media","mime":"image/jpeg","size":2048,"sha256":"` + strings.Repeat("0", 64) + `"}}`},
		{"document", &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{FileName: proto.String("invoice.pdf"), Mimetype: proto.String("application/pdf"),
			FileLength: proto.Uint64(9000), DirectPath: proto.String("/v/t62/doc"), MediaKey: make([]byte, 32)}}, false,
			`{"kind":"document","text":"","media":{"url":"/api/v1/incoming/ID/media","mime":"application/pdf","size":9000,"file_name":"invoice.pdf"}}`},
		{"location", &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(-8.65), DegreesLongitude: proto.Float64(115.21),
			Name: proto.String("Denpasar")}}, false,
			`{"kind":"location","text":"","location":{"latitude":-8.65,"longitude":115.21,"name":"Denpasar"}}`},
		{"contact", &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Budi"), Vcard: proto.String("BEGIN:VCARD\nEND:VCARD")}}, false,
			`{"kind":"contact","text":"","contact":{"name":"Budi","vcard":"BEGIN:VCARD\nEND:VCARD"}}`},
		{"reaction", &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Key: &waCommon.MessageKey{ID: proto.String("3EB0MINE")}, Text: proto.String("👍")}}, false,
			`{"kind":"reaction","text":"","reaction":{"message_id":"3EB0MINE","emoji":"👍"}}`},
		{"group text", &waE2E.Message{Conversation: proto.String("/who")}, true,
			`{"kind":"text","text":"/who","group":"120363000000000001@g.us"}`},
	}
	var ids []string
	for _, tc := range cases {
		id := send(tc.msg, tc.inGroup)
		ids = append(ids, id)
		m := receive()
		if m.ID != id || m.From != "6281100000077" || m.Sender != "6281100000077@s.whatsapp.net" || m.SenderName != "Admin" || m.Time.IsZero() {
			t.Fatalf("%s: header %+v", tc.name, m)
		}
		wantChat := "6281100000077@s.whatsapp.net"
		if tc.inGroup {
			wantChat = group.String()
		}
		if m.Chat != wantChat {
			t.Fatalf("%s: chat %q, want %q", tc.name, m.Chat, wantChat)
		}
		b, _ := json.Marshal(webhook.NewMessage(m))
		body := strings.ReplaceAll(string(b), id, "ID")
		var gotFields, wantFields map[string]any
		if err := json.Unmarshal([]byte(body), &gotFields); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.want), &wantFields); err != nil {
			t.Fatal(tc.name, err)
		}
		if gotFields["type"] != "message" || gotFields["id"] != "ID" {
			t.Fatalf("%s: %s", tc.name, body)
		}
		for _, k := range []string{"type", "id", "from", "chat", "time", "sender", "sender_name"} {
			delete(gotFields, k)
		}
		g, _ := json.Marshal(gotFields)
		w, _ := json.Marshal(wantFields)
		if string(g) != string(w) {
			t.Fatalf("%s: delivery\n%s\nwant\n%s", tc.name, g, w)
		}
		if m.Media != nil {
			if _, err := os.Stat(c.mediaFile(m.ID)); err != nil {
				t.Fatalf("%s: media reference not kept: %v", tc.name, err)
			}
		}
	}
	// A bare protocol message (a revoke's envelope) is not the bot's.
	send(&waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum()}}, false)
	send(&waE2E.Message{Conversation: proto.String("after")}, false)
	if m := receive(); m.Text != "after" {
		t.Fatalf("a protocol message was handed on: %+v", m)
	}
	waitReceipts(t, s, ids...)
	// An unknown id has no media; a known one is looked up (the fake server has no media
	// host, so the download itself fails after remedy found the reference).
	if _, _, err := c.Download(ctx, "nope"); !errors.Is(err, ErrNoMedia) {
		t.Fatalf("unknown id: %v", err)
	}
}
