package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/remedy-run/remedy/internal/chat"
	"github.com/remedy-run/remedy/internal/queue"
)

// send queues o through the send API's path (the same checks, statuses, rate limit and
// idempotency as POST /api/v1/messages).
func (b *Bot) send(ctx context.Context, o Outgoing) (string, error) {
	out := chat.Outgoing{To: o.To, Text: o.Text, ReplyTo: o.ReplyTo, ReplyToSender: o.ReplyToSender,
		Mentions: o.Mentions, IdempotencyKey: o.IdempotencyKey}
	if r := o.Reaction; r != nil {
		out.Reaction = &chat.Reaction{MessageID: r.MessageID, Emoji: r.Emoji, Sender: r.Sender}
	}
	if m := o.Media; m != nil {
		out.Media = &chat.Media{Kind: m.Kind, MIME: m.MIME, FileName: m.FileName, Size: int64(len(m.Data)), Data: m.Data}
	}
	id, err := b.d.SendMessage(ctx, o.Session, out)
	var me *chat.MediaError
	switch {
	case errors.As(err, &me):
		// The API answers these 413/415; to a Go caller they are invalid input like the rest.
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	case errors.Is(err, queue.ErrFull):
		return "", fmt.Errorf("%w: %v", ErrQueueFull, err)
	}
	return id, err
}
