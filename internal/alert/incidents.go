package alert

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// incident is what the pipeline knows of an open incident, derived from the engine's
// alert decisions (the engine owns whether it fires; the pipeline owns where it was
// told): its latest firing or escalated alert, whether that one is held and why, and
// the severities (label sets) queued on each channel since it began.
type incident struct {
	last   Alert
	held   string
	posted map[string][]policies.Severity
}

// delivery is one outbox row to write for an alert.
type delivery struct {
	channel string
	ends    []policies.Severity
}

// deliveries are the channels an alert goes to (handleMu held): a resolution to the
// channels that were given the incident, each ending every label set posted there; a
// firing to its channels, ending the label sets of earlier severities.
func (p *Pipeline) deliveries(a Alert) []delivery {
	inc := p.incidents[a.Fingerprint]
	var out []delivery
	if a.State == "resolved" {
		if inc == nil {
			return nil
		}
		for _, c := range sortedKeys(inc.posted) {
			out = append(out, delivery{channel: c, ends: inc.posted[c]})
		}
		return out
	}
	chans := a.Channels
	if len(chans) == 0 {
		chans = sortedKeys(p.channels)
	}
	chans = append([]string(nil), chans...)
	sort.Strings(chans)
	for _, c := range chans {
		if _, ok := p.channels[c]; !ok {
			continue // a channel the configuration does not have
		}
		dl := delivery{channel: c}
		if inc != nil && !a.Instant {
			for _, s := range inc.posted[c] {
				if s != a.Severity {
					dl.ends = append(dl.ends, s)
				}
			}
		}
		out = append(out, dl)
	}
	return out
}

// track updates the open incidents after an alert was stored (handleMu held).
func (p *Pipeline) track(a Alert, held string, out []delivery) {
	switch {
	case a.Instant:
	case a.State == "resolved":
		delete(p.incidents, a.Fingerprint)
		p.mu.Lock()
		delete(p.acks, a.Fingerprint) // an ack lasts until the incident resolves
		p.mu.Unlock()
	default:
		inc := p.incidents[a.Fingerprint]
		if inc == nil {
			inc = &incident{posted: map[string][]policies.Severity{}}
			p.incidents[a.Fingerprint] = inc
		}
		a.Ends = nil
		inc.last, inc.held = a, held
		for _, dl := range out {
			inc.posted[dl.channel] = []policies.Severity{a.Severity}
		}
	}
}

// release sends, now, the latest notification of every open incident that was held
// and is held no longer: a silence ended, an ack was withdrawn. Alertmanager does the
// same when a silence expires. (What an inhibition held, the engine tells itself.)
func (p *Pipeline) release(ctx context.Context, why string) error {
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	return p.releaseLocked(ctx, why)
}

func (p *Pipeline) releaseLocked(ctx context.Context, why string) error {
	for _, fp := range sortedKeys(p.incidents) {
		inc := p.incidents[fp]
		if inc.held == "" {
			continue
		}
		a := inc.last
		if a.Held != "" || p.hold(a) != "" {
			continue
		}
		a.ID, a.Time = 0, time.Now()
		a.Reason = "no longer held (" + inc.held + "): " + why
		pa := p.plan(a, "")
		if err := p.store(ctx, pa); err != nil {
			p.unstored = append(p.unstored, pa) // stored by Run when the database takes writes
			p.unstoredN.Store(int64(len(p.unstored)))
			p.Wake()
			continue
		}
		p.stored(pa)
	}
	return nil
}

// checkSilences releases what silences that ended by time held.
func (p *Pipeline) checkSilences(ctx context.Context) {
	p.mu.Lock()
	ended := ""
	now := time.Now()
	for _, s := range p.silences {
		if !now.Before(s.Ends) {
			ended = "silence #" + strconv.FormatInt(s.ID, 10) + " ended"
			break
		}
	}
	p.mu.Unlock()
	if ended == "" {
		return
	}
	if err := p.loadSilences(ctx); err != nil {
		p.opts.Logger.Error("silences", "error", err)
		return
	}
	if err := p.release(ctx, ended); err != nil {
		p.opts.Logger.Error("release after a silence", "error", err)
	}
}

// refresher is a channel that must be told the open incidents periodically, or it ends
// them on its own (Alertmanager resolves an alert whose endsAt passed).
type refresher interface {
	RefreshEvery() time.Duration
}

// refresh re-sends the open, delivered incidents to each refreshing channel that is due.
func (p *Pipeline) refresh(ctx context.Context) {
	for _, name := range sortedKeys(p.channels) {
		p.refreshChannel(ctx, name)
	}
}

// refreshChannel re-sends the open, delivered incidents to one channel if it refreshes
// and is due; its channel's worker calls it, so a slow refresh delays only that channel.
func (p *Pipeline) refreshChannel(ctx context.Context, name string) {
	now := time.Now()
	r, ok := p.channels[name].(refresher)
	if !ok || r.RefreshEvery() <= 0 {
		return
	}
	p.mu.Lock()
	due := now.Sub(p.refreshed[name]) >= r.RefreshEvery()
	if due {
		p.refreshed[name] = now
	}
	p.mu.Unlock()
	if !due {
		return
	}
	var alerts []Alert
	p.handleMu.Lock()
	for _, fp := range sortedKeys(p.incidents) {
		if inc := p.incidents[fp]; inc.held == "" && len(inc.posted[name]) > 0 {
			alerts = append(alerts, inc.last)
		}
	}
	p.handleMu.Unlock()
	if len(alerts) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, SendTimeout)
	if err := p.channels[name].Send(sctx, alerts); err != nil {
		p.opts.Logger.Warn("refresh of open incidents failed; tried again next time", "channel", name, "error", err)
	}
	cancel()
}

// loadIncidents rebuilds the open incidents and the acks from the database at start:
// every alert of a fingerprint since its last resolution, and the channels they were
// queued on.
func (p *Pipeline) loadIncidents(ctx context.Context) error {
	const open = `a.instant = 0 AND a.state != 'resolved' AND a.id > coalesce((SELECT max(r.id) FROM alerts r
		WHERE r.fingerprint = a.fingerprint AND r.state = 'resolved'), 0)`
	var rows []struct {
		ID          int64  `db:"id"`
		FP          string `db:"fingerprint"`
		TS          int64  `db:"ts"`
		Policy      string `db:"policy"`
		Instance    string `db:"instance"`
		Severity    string `db:"severity"`
		State       string `db:"state"`
		Summary     string `db:"summary"`
		Labels      string `db:"labels"`
		Annotations string `db:"annotations"`
		Held        string `db:"held"`
		Reason      string `db:"reason"`
	}
	if err := p.opts.DB.Select(ctx, &rows, `SELECT a.id, a.fingerprint, a.ts, a.policy, a.instance, a.severity, a.state,
		a.summary, a.labels, a.annotations, a.held, a.reason FROM alerts a WHERE `+open+` ORDER BY a.id`); err != nil {
		return err
	}
	for _, r := range rows {
		a := Alert{ID: r.ID, Fingerprint: r.FP, Time: time.UnixMilli(r.TS), Policy: r.Policy, Instance: r.Instance,
			Severity: policies.Severity(r.Severity), State: r.State, Summary: r.Summary, Reason: r.Reason}
		_ = json.Unmarshal([]byte(r.Labels), &a.Labels)
		_ = json.Unmarshal([]byte(r.Annotations), &a.Annotations)
		p.track(a, r.Held, nil)
	}
	var posted []struct {
		FP       string `db:"fingerprint"`
		Severity string `db:"severity"`
		Channel  string `db:"channel"`
	}
	if err := p.opts.DB.Select(ctx, &posted, `SELECT a.fingerprint, a.severity, o.channel FROM alert_outbox o
		JOIN alerts a ON a.id = o.alert_id WHERE `+open+` ORDER BY o.id`); err != nil {
		return err
	}
	for _, r := range posted {
		if inc := p.incidents[r.FP]; inc != nil {
			inc.posted[r.Channel] = []policies.Severity{policies.Severity(r.Severity)}
		}
	}
	var acks []struct {
		FP  string `db:"fingerprint"`
		Sev string `db:"severity"`
	}
	if err := p.opts.DB.Select(ctx, &acks, `SELECT fingerprint, severity FROM acks`); err != nil {
		return err
	}
	for _, a := range acks {
		p.acks[a.FP] = policies.Severity(a.Sev)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ResolveOpenExcept resolves, now, every open incident for which firing(fingerprint) is
// false, with reason, on the channels that were told — the start's reconciliation with
// the engine, the owner of whether an incident fires: an incident the engine does not
// have firing (its saved state was unreadable, or was saved before the firing or the
// resolution reached the pipeline) would otherwise stay open here, re-sent to
// Alertmanager every minute and never ended. It returns how many it resolved.
func (p *Pipeline) ResolveOpenExcept(ctx context.Context, firing func(fingerprint string) bool, reason string) (int, error) {
	p.handleMu.Lock()
	defer p.handleMu.Unlock()
	n := 0
	for _, fp := range sortedKeys(p.incidents) {
		if firing(fp) {
			continue
		}
		a := p.incidents[fp].last
		a.ID, a.Time, a.State, a.Reason, a.Held = 0, time.Now(), "resolved", reason, ""
		a.Summary = a.Policy + " resolved"
		pa := p.plan(a, "")
		if err := p.store(ctx, pa); err != nil {
			return n, err
		}
		p.stored(pa)
		n++
	}
	return n, nil
}
