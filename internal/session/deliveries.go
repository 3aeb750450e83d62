package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/remedy-run/remedy/internal/whatsapp"
	"github.com/remedy-run/remedy/web"
	"github.com/remedy-run/remedy/webhook"
)

// receipt queues a delivery or read receipt for the bot's handler (called inside
// whatsmeow's handling: it only writes it down).
func (s *Session) receipt(r webhook.Receipt) {
	if !s.TakesEvents() {
		return // nobody to tell
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := webhook.New(webhook.TypeReceipt, r.Time, r)
	if err == nil {
		err = s.chat.Notify(ctx, e)
	}
	if err != nil {
		s.log.Warn("receipt not queued for the handler", "chat", r.Chat, "error", err)
	}
}

// change keeps an edit or a deletion of an earlier message for the bot's handler, on
// disk before WhatsApp gets its receipt (an error leaves it for WhatsApp to deliver
// again), as incoming messages are kept.
func (s *Session) change(e webhook.Event) error {
	if !s.TakesEvents() {
		return nil // nobody to tell
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.chat.Notify(ctx, e)
}

// Notify queues a delivery for the bot's handler (a send outcome: type and data), durably:
// it is on disk when Notify returns nil.
func (s *Session) Notify(ctx context.Context, typ string, at time.Time, data any) error {
	e, err := webhook.New(typ, at, data)
	if err != nil {
		return err
	}
	return s.chat.Notify(ctx, e)
}

// IncomingMedia is GET /api/v1/incoming/{id}/media: the media of an incoming message,
// downloaded from WhatsApp now and decrypted.
func (s *Session) IncomingMedia(ctx context.Context, id string) ([]byte, string, error) {
	data, mime, err := s.conn.Download(ctx, id)
	switch {
	case err == nil:
		return data, mime, nil
	case errors.Is(err, whatsapp.ErrNoMedia):
		return nil, "", fmt.Errorf("%w: no media for message %q (unknown id, not a media message, or older than 30 days)", web.ErrNotFound, id)
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrNotLoggedIn):
		return nil, "", web.ErrUnavailable
	case errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith404), errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith410):
		return nil, "", web.ErrGone
	}
	s.log.Warn("incoming media download failed", "id", id, "error", err)
	return nil, "", &web.Error{Status: http.StatusBadGateway, Code: "download_failed", Message: "WhatsApp's media download failed: " + err.Error()}
}
