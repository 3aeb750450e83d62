package bot

import (
	"context"

	"github.com/remedy-run/remedy/internal/chat"
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
	return b.d.SendMessage(ctx, out)
}
