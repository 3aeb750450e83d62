package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mau.fi/whatsmeow"
)

// ErrPairTimeout means no phone scanned a code (or entered the phone code) before the
// server stopped offering them.
var ErrPairTimeout = errors.New("pairing timed out: no phone linked this device before the codes ran out; run remedy pair again")

// ErrUnreachable means WhatsApp's servers could not be reached (network down, DNS,
// firewall): pairing never started.
var ErrUnreachable = errors.New("cannot reach WhatsApp")

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
		return fmt.Errorf("pairing: %w: %w", ErrUnreachable, err)
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
						return fmt.Errorf("pairing code for %s: %w: %w", phone, errPhoneRefused, err)
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

var errPhoneRefused = errors.New("WhatsApp refused a pairing code")

// ExplainPairError says in words why a pairing ended and what to do next, for the
// dashboard's Pair card and the Events panel; reason is a short label value
// (unreachable, timed_out, phone_refused, outdated, failed). The Go error, with its
// chain, belongs in the log.
func ExplainPairError(err error) (reason, text string) {
	switch {
	case errors.Is(err, ErrUnreachable):
		return "unreachable", "remedy could not reach WhatsApp's servers: this machine seems to have no internet access, or a firewall or proxy blocks it. Check the connection, then press Pair again."
	case errors.Is(err, ErrPairTimeout):
		return "timed_out", "No phone linked this device before the codes ran out. Press Pair again and scan the code within 20 seconds of it appearing."
	case errors.Is(err, context.DeadlineExceeded):
		return "timed_out", "Pairing stopped after 3 minutes without a phone linking this device. Press Pair again when the phone is at hand."
	case errors.Is(err, errPhoneRefused):
		return "phone_refused", "WhatsApp refused a pairing code for this number. Check it is the bot's number in international form (country code first, e.g. +49 151 …), or scan the QR code instead."
	case strings.Contains(err.Error(), pairEventText(whatsmeow.QRChannelClientOutdated.Event)):
		return "outdated", "WhatsApp rejected this remedy's client version. Update remedy, then pair again."
	}
	return "failed", "Pairing failed (" + lastCause(err) + "). Press Pair again; if it keeps failing, stop remedy and run remedy pair in a terminal to see every step."
}

// lastCause is the innermost message of an error chain ("connection refused").
func lastCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
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

// ParsePhone checks a phone number given for a pairing code and returns its digits:
// international form, country code first, spaces, dashes, dots and brackets allowed
// ("+44 7700 900123" → "447700900123"). E.164 numbers have at most 15 digits; fewer than
// 7 cannot be a country code and a subscriber number. The error says how to write it.
func ParsePhone(s string) (string, error) {
	digits := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')':
			return -1
		}
		return r
	}, strings.TrimPrefix(strings.TrimSpace(s), "+"))
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%q is not a phone number WhatsApp can send a code to: %s; write it in international form, country code first (e.g. +49 151 23456789)", s, why)
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return bad("only digits, spaces, dashes and a leading + are allowed")
		}
	}
	switch {
	case len(digits) < 7:
		return bad(fmt.Sprintf("%d digits are too few", len(digits)))
	case len(digits) > 15:
		return bad(fmt.Sprintf("%d digits are too many (at most 15)", len(digits)))
	case digits[0] == '0':
		return bad("it starts with 0, a national prefix")
	}
	return digits, nil
}
