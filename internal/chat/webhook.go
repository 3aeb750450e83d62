package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/webhook"
)

// WebhookHandler posts each delivery (webhook.Event: a message, a receipt, a send
// outcome) as JSON to the bot's URL, signed (webhook.Sign: X-Remedy-Timestamp and
// X-Remedy-Signature) when Secret is set, with X-Remedy-Delivery for idempotency. For a
// message, a 2xx answer {"reply": "…"} is sent back to the chat; 202 or an empty body
// means the bot sends later through the API. Any other status fails the attempt, which
// the inbound queue retries (Retry-After on 429/503 is honoured). The request lasts as
// long as the context (the queue's item_timeout): no timeout of its own.
type WebhookHandler struct {
	URL    string
	Secret []byte
	Client *http.Client
}

// maxAnswer bounds the handler's answer: 1 MiB holds a reply of WhatsApp's longest text
// (65,536 characters, up to 256 KiB of UTF-8) even with every character escaped. A
// longer answer fails the attempt rather than be cut and dropped.
const maxAnswer = 1 << 20

// Handle posts a message and returns the handler's reply.
func (h WebhookHandler) Handle(ctx context.Context, m Message) (string, error) {
	e := webhook.NewMessage(m)
	e.Session = m.Session
	b, err := h.post(ctx, e, m.ID)
	if err != nil {
		return "", err
	}
	var out struct {
		Reply string `json:"reply"`
	}
	if len(bytes.TrimSpace(b)) > 0 {
		_ = json.Unmarshal(b, &out) // a body that is not the reply object is no reply
	}
	return out.Reply, nil
}

// HandleEvent posts a delivery that is not a message.
func (h WebhookHandler) HandleEvent(ctx context.Context, e webhook.Event) error {
	_, err := h.post(ctx, e, DeliveryID(ctx))
	return err
}

func (h WebhookHandler) post(ctx context.Context, e webhook.Event, delivery string) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return nil, actions.HideURLError(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id := DeliveryID(ctx); id != "" {
		delivery = id
	}
	if delivery != "" {
		req.Header.Set(webhook.DeliveryHeader, delivery)
	}
	if e.Session != "" {
		req.Header.Set(webhook.SessionHeader, e.Session)
	}
	now := time.Now()
	req.Header.Set(webhook.TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	if len(h.Secret) > 0 {
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(h.Secret, now, body))
	}
	client := http.DefaultClient
	if h.Client != nil {
		client = h.Client
	}
	// Redirects are not followed: a 301/302 would become a GET without the body (a
	// page answering it 200 would acknowledge a message the bot never saw), and the
	// signature would go to whatever host the redirect names.
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return nil, actions.HideURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return nil, fmt.Errorf("handler answered %s; remedy does not follow redirects: set whatsapp.handler.url to the address it redirects to", resp.Status)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := fmt.Errorf("handler answered %s", resp.Status)
		if after := retryAfter(resp.Header.Get("Retry-After"), now); after > 0 {
			return nil, &queue.RetryAfterError{Err: err, After: after}
		}
		return nil, err
	}
	// The answer must be read whole: a reply cut by the item's deadline or a dropped
	// connection is an attempt that failed, not an answer without a reply.
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("reading the handler's answer: %w", actions.HideURLError(err))
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("the handler's answer is over %d bytes (a reply is at most %d characters)", maxAnswer, MaxText)
	}
	return b, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date (RFC 9110 10.2.3).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

type deliveryKey struct{}

// DeliveryID is the delivery's id in a handler's context: "q<queue item id>", the same
// on every retry.
func DeliveryID(ctx context.Context) string {
	s, _ := ctx.Value(deliveryKey{}).(string)
	return s
}
