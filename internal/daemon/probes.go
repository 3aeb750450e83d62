package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/whatsapp"
)

// whatsAppOff is the WhatsApp state of a remedy without WhatsApp (whatsapp.enabled false).
const whatsAppOff = "off"

// whatsAppState is WhatsApp's state as every probe and screen shows it: the connection's
// state, or "off". /readyz, /metrics and the status all read it here.
func (d *Daemon) whatsAppState() string {
	if d.wa == nil {
		return whatsAppOff
	}
	return string(d.wa.State())
}

// whatsAppReady is the readiness probe: connected, deliberately unpaired and off are
// ready, and /readyz names which; any other state is not ready.
func (d *Daemon) whatsAppReady(context.Context) (string, error) {
	switch st := d.whatsAppState(); st {
	case whatsAppOff, string(whatsapp.Connected), string(whatsapp.Unpaired): // unpaired is deliberate until someone pairs
		return st, nil
	default:
		return "", fmt.Errorf("whatsapp %s", st)
	}
}

// whatsAppStateSet is remedy_whatsapp_state: one series per state (off included), so a
// fleet's Prometheus tells a never-paired remedy from a connected one.
func (d *Daemon) whatsAppStateSet() *monitor.StateSet {
	states := []string{whatsAppOff}
	for _, s := range whatsapp.States() {
		states = append(states, string(s))
	}
	return monitor.NewStateSet("remedy_whatsapp_state",
		"WhatsApp connection state: 1 for the current state, 0 for the others (off: WhatsApp is not enabled).",
		"state", states, d.whatsAppState)
}

// databaseReady is /readyz's database_writable: databaseHealth, and while a rebuild runs
// (the damaged file serves, so it passes) the words the status shows for it, with its
// progress (issue 26: progress in the log, on the dashboard and on /readyz).
func (d *Daemon) databaseReady(ctx context.Context) (string, error) {
	if err := d.databaseHealth(ctx); err != nil {
		return "", err
	}
	if s, ok := d.rebuilding(); ok {
		return s, nil
	}
	return "ok", nil
}

// rebuilding says how far a rebuild of remedy.db is, and false when none runs.
func (d *Daemon) rebuilding() (string, bool) {
	p, ok := d.data.Main.Rebuilding()
	if !ok {
		return "", false
	}
	return "rebuilding (" + p.String() + "); the damaged file serves until the copy is complete", true
}

// databaseHealth is the main database's health as /readyz ("database_writable") and the
// status (database) both show it, so the two never disagree: a write goes through (the
// probe row in state, within 5 s), and no write was refused for lack of space since the
// last one that succeeded. Errors: "full: …" or "not writable: …".
func (d *Daemon) databaseHealth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := d.data.Main.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES ('remedy.health', 'remedy', '{}', ?)
		ON CONFLICT(key) DO UPDATE SET updated = excluded.updated`, time.Now().UnixMilli())
	if f := d.data.Main.Full(); f != "" {
		return fmt.Errorf("full: %s", f) // readable, but refusing writes
	}
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	return nil
}
