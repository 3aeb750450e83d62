package daemon

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waE2E"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// The typed webhook end to end, through the real whatsmeow client: a customer's image
// reaches the bot's handler signed (verified with webhook.Read, the documented check)
// with a download URL on remedy's API; GET on it fetches the file from WhatsApp's
// (fake) media host and decrypts it; expired media answers 410. The customer's read
// receipt for the bot's reply reaches the handler as a "receipt" delivery. A delivery
// with a forged signature would not verify.
func TestTypedWebhookWithMediaAndReceipts(t *testing.T) {
	// Not parallel: t.Setenv (the handler secret) changes the process environment.
	t.Setenv("REMEDY_TEST_HANDLER_SECRET", "s3cret")
	var mu sync.Mutex
	var got []webhook.Event
	var bad []error
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := webhook.Read(r, []byte("s3cret"))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			bad = append(bad, err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = append(got, e)
		if e.Type == webhook.TypeMessage {
			w.Write([]byte(`{"reply":"nice picture"}`))
		}
	}))
	defer handler.Close()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		c.WhatsApp.Handler = &config.Handler{URL: handler.URL, SecretEnv: "REMEDY_TEST_HANDLER_SECRET", ReplyOutcomes: true}
	}, "+6281100000009")
	ctx := context.Background()
	p, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	picture := bytes.Repeat([]byte("a picture of a cat "), 300)
	img, err := s.PutImage(picture, "image/jpeg", "my cat")
	if err != nil {
		t.Fatal(err)
	}
	s.Each(func(fc *wafake.Conn) {
		n, err := p.PrepareMessage(ctx, r.d.sessions.Default().Conn().Client().Store, &waE2E.Message{ImageMessage: img})
		if err != nil {
			t.Fatal(err)
		}
		if err := fc.Send(n); err != nil {
			t.Fatal(err)
		}
	})
	events := func() []webhook.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]webhook.Event(nil), got...)
	}
	ofType := func(typ string) []webhook.Event {
		var out []webhook.Event
		for _, e := range events() {
			if e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
	r.eventually("the image at the handler and the reply at the server", func() bool {
		return len(ofType(webhook.TypeMessage)) == 1 && len(s.Messages()) == 1
	})
	m := ofType(webhook.TypeMessage)[0].Message
	if m == nil || m.Kind != webhook.KindImage || m.Text != "my cat" || m.Media == nil || m.Media.MIME != "image/jpeg" ||
		m.Media.Size != uint64(len(picture)) || m.Media.URL != "/api/v1/incoming/"+m.ID+"/media" {
		t.Fatalf("delivered %+v", m)
	}
	code, body := r.do("GET", m.Media.URL, "")
	if code != 200 || body != string(picture) {
		t.Fatalf("media download: %d, %d bytes (want %d)", code, len(body), len(picture))
	}
	if code, _ := r.do("GET", "/api/v1/incoming/3EB0NOTHING/media", ""); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	s.DropMedia()
	if code, body := r.do("GET", m.Media.URL, ""); code != 410 {
		t.Fatalf("expired media: %d %s", code, body)
	}
	// The customer reads the bot's reply.
	reply := s.Messages()[0]
	s.Each(func(fc *wafake.Conn) {
		if err := fc.Send(waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{"from": p.JID, "id": reply.ID, "type": "read",
			"t": strconv.FormatInt(time.Now().Unix(), 10)}}); err != nil {
			t.Fatal(err)
		}
	})
	r.eventually("the read receipt at the handler", func() bool { return len(ofType(webhook.TypeReceipt)) == 1 })
	rc := ofType(webhook.TypeReceipt)[0]
	// The reply went through the send path: its outcome reaches the handler too, which
	// asked for it (reply_outcomes).
	r.eventually("the reply's send_outcome at the handler", func() bool { return len(ofType(webhook.TypeSendOutcome)) == 1 })
	if so := ofType(webhook.TypeSendOutcome)[0].SendOutcome; so == nil || so.ID != reply.ID || so.Status != webhook.OutcomeSent {
		t.Fatalf("send outcome %+v, want sent for %s", so, reply.ID)
	}
	if rc.Type != webhook.TypeReceipt || rc.Receipt == nil || rc.Receipt.Status != "read" || len(rc.Receipt.MessageIDs) != 1 ||
		rc.Receipt.MessageIDs[0] != reply.ID || rc.Receipt.From != "6281100000077" {
		t.Fatalf("receipt delivery %+v (%+v)", rc, rc.Receipt)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) != 0 {
		t.Fatalf("deliveries that did not verify: %v", bad)
	}
}
