package daemon

import (
	"context"
	"errors"

	"github.com/remedy-run/remedy/internal/chat"
)

// ErrWhatsAppOff is returned by Send when WhatsApp is switched off (whatsapp.enabled).
var ErrWhatsAppOff = errors.New("whatsapp is off (whatsapp.enabled: false)")

// SendText queues a text for a recipient (a phone number or a JID: a group's is kept
// as is) on the durable outbound queue; it is on disk when SendText returns nil.
func (d *Daemon) SendText(ctx context.Context, to, text string) error {
	if d.chat == nil {
		return ErrWhatsAppOff
	}
	return d.chat.Send(ctx, to, text)
}

// SendMessage queues a message of any kind on the durable outbound queue (the send
// API's path) and returns its id once it is on disk (chat.Pipeline.SendMessage).
func (d *Daemon) SendMessage(ctx context.Context, o chat.Outgoing) (string, error) {
	if d.chat == nil {
		return "", ErrWhatsAppOff
	}
	return d.chat.SendMessage(ctx, o)
}
