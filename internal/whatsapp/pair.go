package whatsapp

import (
	"context"
	"errors"
	"fmt"

	"go.mau.fi/whatsmeow"
)

// ErrPairTimeout means no phone scanned a code (or entered the phone code) before the
// server stopped offering them.
var ErrPairTimeout = errors.New("pairing timed out: no phone linked this device before the codes ran out; run remedy pair again")

// PairCode is one thing to show the operator: a QR code, or a phone pairing code.
type PairCode struct {
	QR    string // the text to encode as a QR code
	Phone string // "ABCD-EFGH", to type in WhatsApp → Linked devices → Link with phone number
}

// Pair links this device to a WhatsApp account. Each new QR code (they rotate about every
// 20 s) is passed to show; with phone set, a pairing code for that number is shown too.
// It returns nil once the phone confirmed the link; whatsmeow then reconnects by itself
// and WA_CONNECTED follows.
func (c *Conn) Pair(ctx context.Context, phone string, show func(PairCode)) error {
	if id := c.cli.Store.ID; id != nil {
		return fmt.Errorf("already paired as %s; to pair another number, log out first", id.User)
	}
	qrs, err := c.cli.GetQRChannel(ctx)
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	c.setState(Pairing)
	defer c.setQR("")
	if err := c.cli.ConnectContext(c.bg); err != nil {
		c.setState(Unpaired)
		return fmt.Errorf("pairing: cannot reach WhatsApp: %w", err)
	}
	phoneShown := false
	for {
		select {
		case <-ctx.Done():
			c.cli.Disconnect()
			c.setState(Unpaired)
			return fmt.Errorf("pairing: %w", ctx.Err())
		case it, ok := <-qrs:
			if ctx.Err() != nil {
				// whatsmeow ends the channel (a timeout event, or closed) when ctx ends:
				// that is the caller's cancellation, not codes running out.
				c.cli.Disconnect()
				c.setState(Unpaired)
				return fmt.Errorf("pairing: %w", ctx.Err())
			}
			if !ok {
				c.setState(Unpaired)
				return ErrPairTimeout
			}
			switch it.Event {
			case whatsmeow.QRChannelEventCode:
				c.setQR(it.Code)
				show(PairCode{QR: it.Code})
				// whatsmeow wants the first QR event before a phone code can be asked for.
				if phone != "" && !phoneShown {
					phoneShown = true
					code, err := c.cli.PairPhone(ctx, phone, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
					if err != nil {
						c.cli.Disconnect()
						c.setState(Unpaired)
						return fmt.Errorf("pairing code for %s: %w", phone, err)
					}
					show(PairCode{Phone: code})
				}
			case whatsmeow.QRChannelSuccess.Event:
				return nil
			case whatsmeow.QRChannelTimeout.Event:
				c.setState(Unpaired)
				return ErrPairTimeout
			case whatsmeow.QRChannelEventError:
				c.setState(Unpaired)
				return fmt.Errorf("pairing failed: %w", it.Error)
			default:
				// client outdated, scanned without multi-device, an unexpected event
				c.cli.Disconnect()
				c.setState(Unpaired)
				return fmt.Errorf("pairing failed: %s", pairEventText(it.Event))
			}
		}
	}
}

func pairEventText(ev string) string {
	switch ev {
	case whatsmeow.QRChannelClientOutdated.Event:
		return "this client version is outdated; update remedy"
	case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
		return "the phone scanned the code without multi-device enabled; enable it and try again"
	}
	return "unexpected event " + ev
}

func (c *Conn) setQR(code string) {
	c.mu.Lock()
	c.qr = code
	c.mu.Unlock()
}
