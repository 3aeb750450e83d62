package daemon

import (
	"context"
	"time"

	"github.com/remedy-run/remedy/webhook"
)

// receipt queues a delivery or read receipt for the bot's handler (called inside
// whatsmeow's handling: it only writes it down).
func (d *Daemon) receipt(r webhook.Receipt) {
	if d.cfg.WhatsApp.Handler == nil && d.bot == nil {
		return // nobody to tell
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := webhook.New(webhook.TypeReceipt, r.Time, r)
	if err == nil {
		err = d.chat.Notify(ctx, e)
	}
	if err != nil {
		d.log.Warn("receipt not queued for the handler", "chat", r.Chat, "error", err)
	}
}

// Notify queues a delivery for the bot's handler (a send outcome: type and data), durably:
// it is on disk when Notify returns nil. With WhatsApp off there is no handler: it
// returns nil and drops it.
func (d *Daemon) Notify(ctx context.Context, typ string, at time.Time, data any) error {
	if d.chat == nil {
		return nil
	}
	e, err := webhook.New(typ, at, data)
	if err != nil {
		return err
	}
	return d.chat.Notify(ctx, e)
}
