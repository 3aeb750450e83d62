// Package chat is the message pipeline: incoming WhatsApp messages are queued durably
// (never processed inside whatsmeow's event handler), admin commands are answered, other
// messages go to the configured handler, and replies go out through an outbound queue
// that keeps them across a disconnect.
package chat

import (
	"context"
	"strings"

	"github.com/remedy-run/remedy/webhook"
)

// Message is an incoming message, in the shape the bot's handler receives
// (webhook.Message: text, media, location, contact, reaction, quote, group, sender).
type Message = webhook.Message

// Reply is an outgoing text.
type Reply struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Handler processes a message that is not one of remedy's admin commands. A reply (""
// for none) is sent back to the chat the message came from.
type Handler interface {
	Handle(ctx context.Context, m Message) (reply string, err error)
}

// EventHandler is told of the deliveries that are not messages (receipts, send
// outcomes); a Handler may also be one. An error retries the delivery.
type EventHandler interface {
	HandleEvent(ctx context.Context, e webhook.Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message) (string, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m Message) (string, error) { return f(ctx, m) }

// Digits keeps the digits of a phone number, so "+62 811-00" and "6281100" compare equal.
func Digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
