package session

import (
	"context"
	"testing"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/webhook"
)

type plainHandler struct{}

func (plainHandler) Handle(context.Context, chat.Message) (string, error) { return "", nil }

type eventsHandler struct{ plainHandler }

func (eventsHandler) HandleEvent(context.Context, webhook.Event) error { return nil }

// Receipts, send outcomes, edits and deletions are queued only for a handler that takes
// them: the webhook, or an in-process handler that is a chat.EventHandler (package bot
// passes one only when the bot's Handler has HandleEvent). For any other, each was a
// queue item handled only to be dropped.
func TestOnlyAHandlerThatTakesEventsGetsThem(t *testing.T) {
	webhookCfg := Config{Session: config.Session{WhatsApp: config.WhatsApp{Handler: &config.Handler{URL: "http://127.0.0.1:1/bot"}}}}
	for _, c := range []struct {
		name string
		s    *Session
		want bool
	}{
		{"no handler", &Session{}, false},
		{"webhook", &Session{cfg: webhookCfg}, true},
		{"in process, messages only", &Session{deps: Deps{Handler: plainHandler{}}}, false},
		{"in process, with HandleEvent", &Session{deps: Deps{Handler: eventsHandler{}}}, true},
	} {
		if got := c.s.TakesEvents(); got != c.want {
			t.Errorf("%s: takes events %v, want %v", c.name, got, c.want)
		}
	}
}
