package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
)

// engineState persists the engine's state (engine.Snapshot) so that a restart continues
// incidents, `for` timers, ladders, breakers and budgets where they stopped. The loop
// only marks it dirty; the state writer takes a snapshot through the loop at most once
// a second and writes it from its own goroutine (nothing writes SQLite on the loop), and
// once more after the loop stopped. A failed write is tried again the next second.
type engineState struct {
	dirty atomic.Bool
	// ladderOwnsLogin: the restored state has a WhatsApp reconnect ladder under way, so
	// the next login is the ladder's, on its schedule — not one at start. By session (the
	// instance's session label); "" for a ladder of no session in particular, which
	// holds every session's login.
	ladderOwnsLogin map[string]bool
}

// ladderOwns says whether a restored reconnect ladder makes the session's next login.
func (s *engineState) ladderOwns(session string) bool {
	return s.ladderOwnsLogin[""] || s.ladderOwnsLogin[session]
}

// restoreState loads the persisted state into the engine (before the loop runs),
// rebuilds the history windows from the recorded events and samples, and hands the
// resolutions of incidents whose policy changed or went away while remedy was stopped
// to their owners. A missing or unreadable state starts fresh, with a log line.
func (d *Daemon) restoreState(ctx context.Context) {
	var body string
	err := d.data.Main.Get(ctx, &body, `SELECT body FROM engine_state WHERE id = 1`)
	var ds []engine.Decision
	why := "not firing when remedy started"
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		d.log.Error("engine state not read; starting fresh", "error", err)
		why = "engine state lost at restart (not read); the incident starts over if it still holds"
		d.stateLost("engine state not read: " + err.Error())
	default:
		var snap engine.Snapshot
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			d.log.Error("engine state unreadable; starting fresh", "error", err)
			why = "engine state lost at restart (unreadable); the incident starts over if it still holds"
			d.stateLost("engine state unreadable: " + err.Error())
			break
		}
		ds = d.eng.Restore(snap)
		d.log.Info("engine state restored", "as_of", snap.Now, "firing", d.eng.Firing(), "resolved_by_restore", len(ds)/2)
	}
	if win := min(d.eng.Longest(), 24*time.Hour); win > 0 {
		now := time.Now()
		var ins []engine.Input
		if evs, err := d.data.Main.Events(ctx, now.Add(-win), now.Add(time.Minute)); err == nil {
			for _, e := range evs {
				ins = append(ins, e)
			}
		}
		if ss, err := d.data.Metrics.Samples(ctx, now.Add(-win), now.Add(time.Minute)); err == nil {
			for _, s := range ss {
				ins = append(ins, s)
			}
		}
		d.eng.Warm(ins)
	}
	for _, st := range d.eng.Status() {
		if !slices.Contains(st.Actions, "RECONNECT_WA") {
			continue
		}
		for _, in := range st.Instances {
			if in.State == engine.Firing && !in.Exhausted {
				if d.state.ladderOwnsLogin == nil {
					d.state.ladderOwnsLogin = map[string]bool{}
				}
				d.state.ladderOwnsLogin[in.Labels["session"]] = true
			}
		}
	}
	if len(ds) > 0 {
		d.decide(d.eng, ds)
	}
	d.reconcileIncidents(ctx, ds, why)
	d.firing.Store(int64(d.eng.Firing()))
	for _, c := range d.eng.Counts() {
		d.metrics.PolicyFiring.WithLabelValues(c.Name).Set(float64(c.Firing))
		d.metrics.PolicyFlapping.WithLabelValues(c.Name).Set(float64(c.Flapping))
	}
}

// runStateWriter is the state writer actor; it runs after the engine actor stops.
func (d *Daemon) runStateWriter(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			// The loop has stopped: the engine is this goroutine's now. A database that
			// refuses the write keeps the last state saved (at most a second older).
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.saveState(wctx, d.eng.Snapshot()); err != nil {
				d.log.Error("engine state not saved at shutdown; the last one saved stays", "error", err)
			}
			return nil
		case <-t.C:
		}
		if !d.state.dirty.Swap(false) {
			continue
		}
		var snap engine.Snapshot
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := d.query(qctx, func(e *engine.Engine) { snap = e.Snapshot() })
		cancel()
		if err == nil {
			err = d.saveState(ctx, snap)
		}
		if err != nil {
			d.state.dirty.Store(true)
			if !failing && ctx.Err() == nil {
				d.log.Error("engine state not saved; trying again", "error", err)
			}
			failing = true
			continue
		}
		failing = false
	}
}

func (d *Daemon) saveState(ctx context.Context, snap engine.Snapshot) error {
	body, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = d.data.Main.Exec(ctx, `INSERT INTO engine_state(id, ts, body) VALUES (1, ?, ?)
		ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, body = excluded.body`, time.Now().UnixMilli(), string(body))
	return err
}

// reconcileIncidents makes the alert pipeline's open incidents agree with the restored
// engine, the owner of incident state: an incident the pipeline was told of that the
// engine does not have firing — its state unreadable or missing, or saved (at most once
// a second) before the firing or the resolution — is resolved with why on the channels
// that got it, rather than left open and re-sent to Alertmanager for ever. The
// resolutions Restore decided (ds) are on their way and left to them.
func (d *Daemon) reconcileIncidents(ctx context.Context, ds []engine.Decision, why string) {
	keep := map[string]bool{}
	for _, dec := range ds {
		if dec.Kind == engine.KindAlert {
			keep[alert.Fingerprint(dec.Policy, dec.Labels)] = true
		}
	}
	for _, st := range d.eng.Status() {
		for _, in := range st.Instances {
			if in.State == engine.Firing {
				keep[alert.Fingerprint(st.Name, in.Labels)] = true
			}
		}
	}
	n, err := d.pipeline.ResolveOpenExcept(ctx, func(fp string) bool { return keep[fp] }, why)
	if err != nil {
		d.log.Error("open incidents not reconciled with the engine at start", "error", err)
	}
	if n > 0 {
		d.log.Warn("open incidents the engine does not have firing were resolved", "count", n, "reason", why)
	}
}

// stateLost raises POLICY_STATE_LOST, so that a start without the saved state shows in
// the events (dashboard, replay) and policies can alert on it, not only in the log.
func (d *Daemon) stateLost(msg string) {
	d.inbox.push(engine.Event{Time: time.Now(), Code: "POLICY_STATE_LOST", Source: "daemon", Message: msg})
}
