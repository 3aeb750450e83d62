package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
	"github.com/remedy-run/remedy/webhook"
)

// whatsapp.handler.reply_outcomes over HTTP, end to end: a webhook bot that answers
// with {"reply": …} gets that answer's send_outcome only when it set the key (default
// false); a message it sent through the send API has one either way.
func TestWebhookReplyOutcomesFollowTheSetting(t *testing.T) {
	for _, asked := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "asked"}[asked], func(t *testing.T) {
			var mu sync.Mutex
			outcomes := map[string]string{} // id -> idempotency key
			handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var e webhook.Event
				if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				if e.Type == webhook.TypeMessage {
					w.Write([]byte(`{"reply":"pong"}`))
					return
				}
				if e.SendOutcome != nil {
					mu.Lock()
					outcomes[e.SendOutcome.ID] = e.SendOutcome.IdempotencyKey
					mu.Unlock()
				}
			}))
			defer handler.Close()
			r, s := startWithWhatsApp(t, true, func(c *config.Config) {
				c.WhatsApp.Handler = &config.Handler{URL: handler.URL, ReplyOutcomes: asked}
				fastSend(c)
			})
			ctx := context.Background()
			p, err := wafake.NewPhone(ctx, t.TempDir(), "6281100000077")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			s.Each(func(fc *wafake.Conn) {
				n, err := p.Prepare(ctx, r.d.sessions.Default().Conn().Client().Store, "ping")
				if err != nil {
					t.Fatal(err)
				}
				if err := fc.Send(n); err != nil {
					t.Fatal(err)
				}
			})
			r.eventually("the reply at the server", func() bool { return len(s.Messages()) == 1 })
			reply := s.Messages()[0].ID
			code, body := r.do("POST", "/api/v1/messages", `{"to": "6281100000077", "text": "your order shipped", "idempotency_key": "order-1"}`)
			sent := accepted(t, code, body)
			seen := func(id string) bool { mu.Lock(); defer mu.Unlock(); _, ok := outcomes[id]; return ok }
			r.eventually("the API message's outcome", func() bool { return seen(sent) })
			if asked {
				r.eventually("the reply's outcome", func() bool { return seen(reply) })
			}
			r.eventually("the inbound queue empty", func() bool {
				st, err := r.d.sessions.Default().Pipeline().In.Stats(ctx)
				return err == nil && st.Depth == 0
			})
			mu.Lock()
			defer mu.Unlock()
			if _, got := outcomes[reply]; got != asked || len(outcomes) != map[bool]int{false: 1, true: 2}[asked] {
				t.Fatalf("reply_outcomes %v: outcomes %v (reply %s, API message %s)", asked, outcomes, reply, sent)
			}
		})
	}
}
