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

// maxAnswer bounds what is read of the handler's answer.
const maxAnswer = 64 << 10

// Handle posts a message and returns the handler's reply.
func (h WebhookHandler) Handle(ctx context.Context, m Message) (string, error) {
	b, err := h.post(ctx, webhook.NewMessage(m), m.ID)
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
	now := time.Now()
	req.Header.Set(webhook.TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	if len(h.Secret) > 0 {
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(h.Secret, now, body))
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, actions.HideURLError(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := fmt.Errorf("handler answered %s", resp.Status)
		if after := retryAfter(resp.Header.Get("Retry-After"), now); after > 0 {
			return nil, &queue.RetryAfterError{Err: err, After: after}
		}
		return nil, err
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
