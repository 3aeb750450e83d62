package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/remedy-run/remedy/internal/chat"
)

// ErrInvalid is returned (wrapped, saying what) by Send and Reply for a message that
// cannot be sent as given: fix the message, do not retry it.
var ErrInvalid = chat.ErrInvalid

// ErrQueueFull is returned (wrapped) by Send and Reply when the outbound queue holds its
// capacity (queues.outbound.capacity, 10,000 by default): nothing was queued; retry
// later (the HTTP API answers 429 with Retry-After).
var ErrQueueFull = errors.New("the outbound queue is full")

// Outgoing is a message to send. To is a phone number in international format
// ("+62 811…"), a user JID or a group JID (Message.Chat: reply where a message came
// from).
type Outgoing struct {
	To   string
	Text string // or a media caption
	// ReplyTo quotes the message with this id; ReplyToSender is who wrote it (needed in
	// groups: Message.Sender).
	ReplyTo       string
	ReplyToSender string
	Mentions      []string // numbers or JIDs the text mentions ("@6281…" in Text)
	Reaction      *Reaction
	Media         *Media
	// IdempotencyKey: a second Send with the same key queues nothing and returns the
	// first one's id.
	IdempotencyKey string
	// Session is the number that sends it (config `sessions:`); "" with a single
	// session. With several, "" fails wrapping web.ErrSessionRequired; an unknown name
	// fails wrapping web.ErrUnknownSession.
	Session string
}

// Reaction puts an emoji on a message ("" takes it off).
type Reaction struct {
	MessageID string
	Emoji     string
	Sender    string // who wrote the message reacted to (groups: Message.Sender)
}

// Media is an attachment sent with the message.
type Media struct {
	Kind     string // image, video, audio, document, sticker
	MIME     string // "image/png"
	FileName string // documents
	Data     []byte
}

// Send queues a message on the durable outbound queue and returns its id (WhatsApp's
// message id, as receipts and GET /api/v1/messages/{id} name it) once it is on disk;
// delivery survives disconnects and restarts, keeps order per chat and respects the send
// rate limit — the path of POST /api/v1/messages. Errors: ErrWhatsAppOff; ErrInvalid
// (wrapped, saying what: a bad recipient, nothing to send, media over its limit or of a
// type WhatsApp does not take); ErrQueueFull; the store's (retry later).
func (b *Bot) Send(ctx context.Context, o Outgoing) (string, error) {
	if o.To == "" {
		return "", fmt.Errorf("%w: no recipient", ErrInvalid)
	}
	if o.Text == "" && o.Media == nil && o.Reaction == nil {
		return "", fmt.Errorf("%w: nothing to send (no text, media or reaction)", ErrInvalid)
	}
	return b.send(ctx, o)
}

// Reply answers m in its chat (a group's for a group message), quoting it, from the
// session (number) that received it, through Send (the same queue and errors). A handler that returns Reply's error has m
// delivered again, so a reply that failed to queue is tried again.
func (b *Bot) Reply(ctx context.Context, m Message, text string) error {
	_, err := b.Send(ctx, Outgoing{To: m.Chat, Text: text, ReplyTo: m.ID, ReplyToSender: m.Sender, Session: m.Session})
	return err
}
