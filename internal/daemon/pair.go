package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/internal/whatsapp"
)

// pairer starts WhatsApp pairing from the dashboard: one attempt at a time, in the
// background, for at most three minutes; the page polls the QR code meanwhile.
type pairer struct {
	d       *Daemon
	ctx     context.Context
	running atomic.Bool
}

func (p *pairer) start() error {
	if st := p.d.wa.State(); st != whatsapp.Unpaired && st != whatsapp.LoggedOut {
		return fmt.Errorf("WhatsApp is %s; only an unpaired (or logged out) device can pair", st)
	}
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("a pairing is already in progress")
	}
	go func() {
		defer p.running.Store(false)
		ctx, cancel := context.WithTimeout(p.ctx, 3*time.Minute)
		defer cancel()
		if err := p.d.wa.Pair(ctx, "", func(whatsapp.PairCode) {}); err != nil {
			p.d.log.Warn("WhatsApp pairing from the dashboard failed", "error", err)
			return
		}
		p.d.log.Info("WhatsApp paired from the dashboard")
	}()
	return nil
}
