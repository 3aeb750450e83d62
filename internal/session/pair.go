package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/whatsapp"
)

// pairer starts WhatsApp pairing from the dashboard: one attempt at a time, in the
// background, for at most three minutes; the page polls the QR code meanwhile.
type pairer struct {
	s       *Session
	running atomic.Bool
	lastErr atomic.Pointer[string] // why the last attempt ended without a link, for the page
}

// failure is the last attempt's error ("" if none, or while one runs).
func (p *pairer) failure() string {
	if e := p.lastErr.Load(); e != nil && !p.running.Load() {
		return *e
	}
	return ""
}

func (p *pairer) start() error {
	if st := p.s.conn.State(); st != whatsapp.Unpaired && st != whatsapp.LoggedOut {
		return fmt.Errorf("WhatsApp is %s; only an unpaired (or logged out) device can pair", st)
	}
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("a pairing is already in progress")
	}
	p.lastErr.Store(nil)
	go func() {
		defer p.running.Store(false)
		ctx, cancel := context.WithTimeout(p.s.life, 3*time.Minute)
		defer cancel()
		if err := p.s.conn.Pair(ctx, "", func(whatsapp.PairCode) {}); err != nil {
			p.s.log.Warn("WhatsApp pairing from the dashboard failed", "error", err)
			reason, msg := whatsapp.ExplainPairError(err)
			p.lastErr.Store(&msg)
			// In the Events panel too, and so in the recorded history.
			p.s.emit(engine.Event{Time: time.Now(), Code: "WA_PAIR_ERROR", Source: "whatsapp",
				Labels: map[string]string{"reason": reason}, Message: msg})
			return
		}
		p.s.log.Info("WhatsApp paired from the dashboard")
	}()
	return nil
}
