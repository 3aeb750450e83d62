package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/web"
)

// messagesAPI is the send API's backend: web's types to the chat pipeline's.
type messagesAPI struct{ p *chat.Pipeline }

func (m messagesAPI) Send(ctx context.Context, in web.OutgoingMessage) (web.MessageAccepted, error) {
	o := chat.Outgoing{To: in.To, Text: in.Text, ReplyTo: in.ReplyTo, ReplyToSender: in.ReplyToSender, Mentions: in.Mentions,
		IdempotencyKey: in.IdempotencyKey}
	if r := in.Reaction; r != nil {
		o.Reaction = &chat.Reaction{MessageID: r.MessageID, Emoji: r.Emoji, Sender: r.Sender}
	}
	if md := in.Media; md != nil {
		o.Media = &chat.Media{ID: md.ID, Data: md.Data, Kind: md.Kind, MIME: md.MIME, FileName: md.FileName}
	}
	id, dup, err := m.p.Enqueue(ctx, o)
	if err != nil {
		return web.MessageAccepted{}, apiError(err)
	}
	st := chat.StatusQueued
	if dup {
		if s, err := m.p.MessageStatus(ctx, id); err == nil {
			st = s.Status
		}
	}
	return web.MessageAccepted{ID: id, Status: st, Duplicate: dup}, nil
}

func (m messagesAPI) MessageStatus(ctx context.Context, id string) (web.MessageStatus, error) {
	s, err := m.p.MessageStatus(ctx, id)
	if err != nil {
		return web.MessageStatus{}, apiError(err)
	}
	return web.MessageStatus{ID: s.ID, Chat: s.Chat, Status: s.Status, Reason: s.Reason, Attempts: s.Attempts, Created: s.Created,
		Updated: s.Updated, SentAt: s.SentAt, Replayed: s.Replayed, IdempotencyKey: s.Key}, nil
}

func (m messagesAPI) SaveMedia(ctx context.Context, in web.MediaIn) (web.MediaUpload, error) {
	md, err := m.p.SaveMedia(ctx, chat.Media{Data: in.Data, Kind: in.Kind, MIME: in.MIME, FileName: in.FileName})
	if err != nil {
		return web.MediaUpload{}, apiError(err)
	}
	return web.MediaUpload{ID: md.ID, Kind: md.Kind, MIME: md.MIME, Size: md.Size, FileName: md.FileName}, nil
}

// apiError maps the pipeline's errors to the API's.
func apiError(err error) error {
	var me *chat.MediaError
	switch {
	case errors.As(err, &me) && me.TooLarge:
		return &web.Error{Status: 413, Code: "too_large", Message: me.Error()}
	case errors.As(err, &me):
		return &web.Error{Status: 415, Code: "unsupported_media_type", Message: me.Error()}
	case errors.Is(err, chat.ErrMediaFull):
		return &web.Error{Status: http.StatusInsufficientStorage, Code: "media_full", Message: err.Error()}
	case errors.Is(err, chat.ErrKeyReused):
		return &web.Error{Status: 422, Code: "idempotency_key_reused", Message: err.Error()}
	case errors.Is(err, chat.ErrInvalid):
		return fmt.Errorf("%w: %s", web.ErrInvalid, strings.TrimPrefix(err.Error(), chat.ErrInvalid.Error()+": "))
	case errors.Is(err, chat.ErrNotFound):
		return fmt.Errorf("%w: %s", web.ErrNotFound, strings.TrimPrefix(err.Error(), chat.ErrNotFound.Error()+": "))
	case errors.Is(err, queue.ErrFull):
		return web.ErrOverloaded
	}
	return fmt.Errorf("%w: %v", web.ErrNotStored, err)
}

// PruneMedia is CLEAN_DATA target media: the send API's uploads no queued message needs
// (none when WhatsApp is off).
func (c dataCleaner) PruneMedia(ctx context.Context) (string, error) { return c.d.chat.PruneMedia(ctx) }
