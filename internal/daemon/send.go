package daemon

import (
	"context"
	"errors"
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
