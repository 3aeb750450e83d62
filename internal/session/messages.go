package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/web"
)

// Send is the send API's POST /api/v1/messages on this session: web's types to the
// chat pipeline's.
func (s *Session) Send(ctx context.Context, in web.OutgoingMessage) (web.MessageAccepted, error) {
	o := chat.Outgoing{To: in.To, Text: in.Text, ReplyTo: in.ReplyTo, ReplyToSender: in.ReplyToSender, Mentions: in.Mentions,
		IdempotencyKey: in.IdempotencyKey}
	if r := in.Reaction; r != nil {
		o.Reaction = &chat.Reaction{MessageID: r.MessageID, Emoji: r.Emoji, Sender: r.Sender}
	}
	if md := in.Media; md != nil {
		o.Media = &chat.Media{ID: md.ID, Data: md.Data, Kind: md.Kind, MIME: md.MIME, FileName: md.FileName}
	}
	id, dup, err := s.chat.Enqueue(ctx, o)
	if err != nil {
		return web.MessageAccepted{}, apiError(err)
	}
	st := chat.StatusQueued
	if dup {
		if ms, err := s.chat.MessageStatus(ctx, id); err == nil {
			st = ms.Status
		}
	}
	return web.MessageAccepted{ID: id, Status: st, Duplicate: dup}, nil
}

// MessageStatus is where a message this session sent is (web.ErrNotFound: not one of its).
func (s *Session) MessageStatus(ctx context.Context, id string) (web.MessageStatus, error) {
	st, err := s.chat.MessageStatus(ctx, id)
	if err != nil {
		return web.MessageStatus{}, apiError(err)
	}
	// The session that queued it, which may be another than this one once it left
	// every queue (or its own session is gone).
	name := st.Session
	if name == "" {
		name = config.DefaultSession
	}
	return web.MessageStatus{ID: st.ID, Chat: st.Chat, Status: st.Status, Reason: st.Reason, Attempts: st.Attempts, Created: st.Created,
		Updated: st.Updated, SentAt: st.SentAt, Replayed: st.Replayed, IdempotencyKey: st.Key, Session: name}, nil
}

// SaveMedia keeps an upload of the send API for this session's messages.
func (s *Session) SaveMedia(ctx context.Context, in web.MediaIn) (web.MediaUpload, error) {
	md, err := s.chat.SaveMedia(ctx, chat.Media{Data: in.Data, Kind: in.Kind, MIME: in.MIME, FileName: in.FileName})
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
