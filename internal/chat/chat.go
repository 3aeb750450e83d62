// Package chat is the message pipeline: incoming WhatsApp messages are queued durably
// (never processed inside whatsmeow's event handler), admin commands are answered, other
// messages go to the configured handler, and replies go out through an outbound queue
// that keeps them across a disconnect.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/remedy-run/remedy/actions"
)

// Message is an incoming text.
type Message struct {
	ID   string    `json:"id"`
	From string    `json:"from"` // the sender's number, digits only
	Chat string    `json:"chat"` // where a reply goes (the sender, or a group)
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

// Reply is an outgoing text.
type Reply struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Handler processes a message that is not an admin command. A reply ("" for none) is
// sent back to the chat.
type Handler interface {
	Handle(ctx context.Context, m Message) (reply string, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message) (string, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m Message) (string, error) { return f(ctx, m) }

// WebhookHandler forwards each message as JSON to a URL, signed with HMAC-SHA256 in
// X-Remedy-Signature; a JSON answer {"reply": "…"} is sent back.
type WebhookHandler struct {
	URL    string
	Secret []byte
	Client *http.Client
}

// Handle posts the message.
func (h WebhookHandler) Handle(ctx context.Context, m Message) (string, error) {
	body, _ := json.Marshal(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return "", actions.HideURLError(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if len(h.Secret) > 0 {
		req.Header.Set(actions.SignatureHeader, actions.Sign(h.Secret, body))
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", actions.HideURLError(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("handler answered %s", resp.Status)
	}
	var out struct {
		Reply string `json:"reply"`
	}
	if len(bytes.TrimSpace(b)) > 0 {
		_ = json.Unmarshal(b, &out)
	}
	return out.Reply, nil
}

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
