package bot

import (
	"context"
	"errors"
)

// send is the text path of the outbound queue.
func (b *Bot) send(ctx context.Context, o Outgoing) (string, error) {
	if o.Media != nil || o.Reaction != nil {
		return "", errors.New("bot: media and reactions need the typed outbound queue")
	}
	return "", b.d.SendText(ctx, o.To, o.Text)
}
