package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
	"github.com/remedy-run/remedy/internal/whatsapp"
)

// whatsAppOff is the WhatsApp state of a remedy without WhatsApp (whatsapp.enabled false).
const whatsAppOff = "off"

// whatsAppState is WhatsApp's state as every probe and screen shows it: the only
// session's state, or "off"; with several, "connected" when all are, else the others
// named ("sales disconnected, support unpaired").
func (d *Daemon) whatsAppState() string {
	l := d.sessions.all()
	switch len(l) {
	case 0:
		return whatsAppOff
	case 1:
		return string(l[0].State())
	}
	var off []string
	for _, s := range l {
		if st := s.State(); st != whatsapp.Connected {
			off = append(off, s.Name()+" "+string(st))
		}
	}
	if len(off) == 0 {
		return string(whatsapp.Connected)
	}
	return strings.Join(off, ", ")
}

// addSessionChecks adds /readyz's WhatsApp checks: "whatsapp" for the single default
// session (or "off" without WhatsApp), "whatsapp[NAME]" per session otherwise.
// Connected and deliberately unpaired are ready, and say which; any other state is not.
// A reload calls it again: the checks of sessions that no longer run go.
func (d *Daemon) addSessionChecks() {
	for _, n := range d.checks {
		d.health.Remove(n)
	}
	d.checks = nil
	add := func(name string, c monitor.StateCheck) {
		d.health.AddState(name, c)
		d.checks = append(d.checks, name)
	}
	l := d.sessions.all()
	switch {
	case len(l) == 0 && len(*d.sessionCfgs.Load()) == 0:
		add("whatsapp", func(context.Context) (string, error) { return whatsAppOff, nil })
	case len(l) == 1 && l[0].Name() == config.DefaultSession && len(*d.sessionCfgs.Load()) == 1:
		add("whatsapp", l[0].Ready)
	default:
		for _, s := range l {
			add("whatsapp["+s.Name()+"]", s.Ready)
		}
		d.sessions.failed.Range(func(k, v any) bool { // configured, not running: not ready
			why := v.(string)
			add("whatsapp["+k.(string)+"]", func(context.Context) (string, error) { return "", errors.New(why) })
			return true
		})
	}
}

// whatsAppStateSet is remedy_whatsapp_state{session,state}: one series per session and
// state (off included: WhatsApp off shows as the session "default" off), so a fleet's
// Prometheus tells a never-paired number from a connected one.
func (d *Daemon) whatsAppStateSet() *monitor.KeyedStateSet {
	states := []string{whatsAppOff}
	for _, s := range whatsapp.States() {
		states = append(states, string(s))
	}
	return monitor.NewKeyedStateSet("remedy_whatsapp_state",
		"WhatsApp connection state per session: 1 for the current state, 0 for the others (off: WhatsApp is not enabled).",
		"session", "state", states, func() map[string]string {
			l := d.sessions.all()
			if len(l) == 0 {
				return map[string]string{config.DefaultSession: whatsAppOff}
			}
			m := make(map[string]string, len(l))
			for _, s := range l {
				m[s.Name()] = string(s.State())
			}
			return m
		})
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
//
// Callers within probeShare of the last probe share its result (one write a second
// however many dashboards, scrapers and !status ask: issue 26's "status costs nothing per
// call"); a caller that comes while a probe runs waits for it.
func (d *Daemon) databaseHealth(ctx context.Context) error {
	return d.dbProbe.do(time.Now, func() error { return d.probeDatabase(ctx) })
}

// probeShare is how long one database probe answers for: short beside /readyz's usual
// scrape interval (Prometheus's default is 1 m), long beside a dashboard's 5 s refresh
// with many tabs open.
const probeShare = time.Second

// probeMemo is the last database probe (databaseHealth).
type probeMemo struct {
	mu  sync.Mutex
	at  time.Time // when the last probe ended; zero: none yet
	err error
}

// do returns the last probe's result if it ended less than probeShare ago (by now),
// and otherwise runs probe; callers wait for a probe that runs.
func (m *probeMemo) do(now func() time.Time, probe func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := now(); !m.at.IsZero() && !t.Before(m.at) && t.Sub(m.at) < probeShare {
		return m.err
	}
	err := probe()
	m.at, m.err = now(), err
	return err
}

func (d *Daemon) probeDatabase(ctx context.Context) error {
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
