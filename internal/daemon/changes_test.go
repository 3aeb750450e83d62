package daemon

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// The rule behind b3-01: only a chat message reaches the handler as a message (and is
// answered); anything else WhatsApp delivers is typed apart or not handed over. A
// contact writes a seeded random mix of chat messages, status updates
// (status@broadcast), edits and deletions for everyone of earlier messages, through the
// real whatsmeow client and real Signal encryption. Then: the handler's "message"
// deliveries are exactly the chat messages; each edit arrives as one "edit" naming the
// message and its new text, each deletion as one "delete"; nothing is ever sent to
// status@broadcast (a reply there would be the bot's own status, seen by all its
// contacts), and nothing is dead-lettered.
func TestOnlyChatMessagesReachTheHandlerAsMessages(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REMEDY_CHANGES_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (REMEDY_CHANGES_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	var mu sync.Mutex
	var got []webhook.Event
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := webhook.Read(r, nil)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		if e.Type == webhook.TypeMessage {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"reply":"Thanks! An agent will answer soon."}`))
		}
	}))
	defer handler.Close()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		c.WhatsApp.Handler = &config.Handler{URL: handler.URL, ReplyOutcomes: true}
	}, "+6281100000009")
	ctx := context.Background()
	p, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	bot := r.d.sessions.Default().Conn().Client().Store.ID.ToNonAD().String()
	key := func(id string) *waCommon.MessageKey {
		return &waCommon.MessageKey{RemoteJID: proto.String(bot), FromMe: proto.Bool(true), ID: proto.String(id)}
	}
	var chats []string             // ids of the chat messages sent
	edits := map[string]string{}   // edit id -> "message id|new text"
	deletes := map[string]string{} // delete id -> message id
	send := func(msg *waE2E.Message, status bool) string {
		var id string
		s.Each(func(fc *wafake.Conn) {
			n, err := p.PrepareMessage(ctx, r.d.sessions.Default().Conn().Client().Store, msg)
			if err != nil {
				t.Fatal(err)
			}
			if status {
				n.Attrs["from"] = types.StatusBroadcastJID
				n.Attrs["participant"] = p.JID
			}
			id = n.Attrs["id"].(string)
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
		return id
	}
	var kinds []string
	for i := range 8 {
		kind := []string{"chat", "status", "edit", "delete"}[rng.IntN(4)]
		if i == 0 || len(chats) == 0 {
			kind = "chat"
		}
		kinds = append(kinds, kind)
		switch kind {
		case "chat":
			chats = append(chats, send(&waE2E.Message{Conversation: proto.String("hello " + strconv.Itoa(i))}, false))
		case "status":
			send(&waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("On holiday until Monday " + strconv.Itoa(i))}}, true)
		case "edit":
			target, text := chats[rng.IntN(len(chats))], "hello, edited "+strconv.Itoa(i)
			id := send(&waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
				Key: key(target), Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), EditedMessage: &waE2E.Message{Conversation: proto.String(text)},
				TimestampMS: proto.Int64(time.Now().UnixMilli())}}}}, false)
			edits[id] = target + "|" + text
		case "delete":
			target := chats[rng.IntN(len(chats))]
			id := send(&waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Key: key(target), Type: waE2E.ProtocolMessage_REVOKE.Enum()}}, false)
			deletes[id] = target
		}
	}
	t.Logf("sequence: %s", strings.Join(kinds, " "))
	ofType := func(typ string) []webhook.Event {
		mu.Lock()
		defer mu.Unlock()
		var out []webhook.Event
		for _, e := range got {
			if e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
	r.eventually("every chat message answered and every change delivered", func() bool {
		return len(ofType(webhook.TypeSendOutcome)) >= len(chats) && len(ofType(webhook.TypeEdit)) >= len(edits) &&
			len(ofType(webhook.TypeDelete)) >= len(deletes)
	})
	var msgIDs []string
	for _, e := range ofType(webhook.TypeMessage) {
		if strings.HasPrefix(e.Message.Chat, "status@") {
			t.Fatalf("seed %d: a status update reached the handler as a message: %+v", seed, e.Message)
		}
		msgIDs = append(msgIDs, e.Message.ID)
	}
	// As a set: the inbound queue's four workers hand messages of one chat to the handler
	// concurrently, so their order at the handler is not promised (here the second one
	// arrived first when tests ran in parallel).
	slices.Sort(msgIDs)
	want := slices.Sorted(slices.Values(chats))
	if strings.Join(msgIDs, ",") != strings.Join(want, ",") {
		t.Fatalf("seed %d: messages at the handler %v, want the chat messages %v", seed, msgIDs, chats)
	}
	for _, e := range ofType(webhook.TypeEdit) {
		want, ok := edits[e.Edit.ID]
		if !ok || e.Edit.MessageID+"|"+e.Edit.Text != want || e.Edit.From != "6281100000077" || e.Edit.Kind != webhook.KindText {
			t.Fatalf("seed %d: edit delivery %+v, want %q", seed, e.Edit, want)
		}
		delete(edits, e.Edit.ID)
	}
	for _, e := range ofType(webhook.TypeDelete) {
		if want, ok := deletes[e.Delete.ID]; !ok || e.Delete.MessageID != want {
			t.Fatalf("seed %d: delete delivery %+v, want message %q", seed, e.Delete, want)
		}
		delete(deletes, e.Delete.ID)
	}
	if len(edits)+len(deletes) != 0 {
		t.Fatalf("seed %d: told twice or not at all: edits %v deletes %v", seed, edits, deletes)
	}
	for _, m := range s.Messages() {
		if strings.HasPrefix(m.Chat, "status@") {
			t.Fatalf("seed %d: remedy posted to %s (the bot's own status)", seed, m.Chat)
		}
	}
	if len(s.Messages()) != len(chats) {
		t.Fatalf("seed %d: %d messages sent for %d chat messages", seed, len(s.Messages()), len(chats))
	}
	_, dl := r.do("GET", "/api/v1/deadletters", "")
	var dls []map[string]any
	if err := json.Unmarshal([]byte(dl), &dls); err != nil || len(dls) != 0 {
		t.Fatalf("seed %d: dead letters: %.300s (%v)", seed, dl, err)
	}
}
