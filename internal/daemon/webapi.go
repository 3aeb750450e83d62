package daemon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/alert"
	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/web"
)

// The daemon is the web server's Backend: these methods turn store rows and alert
// pipeline objects into web's own types (struct conversions: the fields are the same,
// the tags are web's).
var _ web.Backend = (*Daemon)(nil)

// webOptions configures the web server from the configuration: the tokens, the Host
// allow-list, the codes programs may post, and the daemon as its Backend.
func (d *Daemon) webOptions() web.Options {
	listenHost, _, _ := net.SplitHostPort(d.cfg.Listen)
	o := web.Options{Backend: d, Hub: d.hub, Token: d.cfg.Token, ReadToken: d.cfg.ReadToken,
		ListenHost: listenHost, AllowedHosts: d.cfg.AllowedHosts, AllowCodes: d.cfg.Ingest.AllowCodes,
		AllowMetrics: d.cfg.Ingest.AllowMetrics,
		Metrics:      d.metrics.Handler(), Live: d.health.Live, Ready: d.health.Ready, Logger: d.log, Drill: d.Drill}
	if len(d.sessions.all()) > 0 {
		o.Messages = messagesAPI{d}
		o.MaxMedia = d.cfg.WhatsApp.Send.MaxMediaBytes()
	}
	return o
}

// convert turns internal rows into web's rows (never nil).
func convert[S, T any](rows []S, f func(S) T) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}

// Events returns the newest recorded events.
func (d *Daemon) Events(ctx context.Context, limit int) ([]engine.Event, error) {
	return d.data.Main.RecentEvents(ctx, limit)
}

// Decisions returns the newest decisions of a policy ("" for all).
func (d *Daemon) Decisions(ctx context.Context, policy string, limit int) ([]web.DecisionRecord, error) {
	rows, err := d.data.Main.Decisions(ctx, policy, limit)
	return convert(rows, func(r store.DecisionRow) web.DecisionRecord { return web.DecisionRecord(r) }), err
}

// Actions returns the newest rows of the actions audit.
func (d *Daemon) Actions(ctx context.Context, limit int) ([]web.ActionRecord, error) {
	rows, err := d.data.Main.Audit(ctx, limit)
	return convert(rows, func(r store.AuditRow) web.ActionRecord { return web.ActionRecord(r) }), err
}

// DeadLetters lists dead letters of a queue ("" for all).
func (d *Daemon) DeadLetters(ctx context.Context, q string, pending bool) ([]web.DeadLetter, error) {
	rows, err := queue.DeadLetters(ctx, d.data.Main, q, pending)
	return convert(rows, func(r queue.DeadLetter) web.DeadLetter { return web.DeadLetter(r) }), err
}

// Report is the newest daily report.
func (d *Daemon) Report(ctx context.Context) (web.Report, error) {
	at, body, err := alert.Latest(ctx, d.data.Main)
	if errors.Is(err, sql.ErrNoRows) {
		return web.Report{}, fmt.Errorf("no daily report yet: %w", web.ErrNotFound)
	}
	return web.Report{Time: at, Body: body}, err
}

// Alerts returns the newest alerts.
func (d *Daemon) Alerts(ctx context.Context, limit int) ([]web.Alert, error) {
	rows, err := d.data.Main.Alerts(ctx, limit)
	// Ackable through the pipeline's own rule (Ack's), so the button is offered exactly
	// where the ack can work.
	return convert(rows, func(r store.AlertRow) web.Alert {
		return web.Alert{ID: r.ID, Fingerprint: r.Fingerprint, TS: r.TS, Policy: r.Policy, Instance: r.Instance,
			Severity: r.Severity, State: r.State, Summary: r.Summary, Suppressed: r.Suppressed, Held: r.Held,
			AckedBy: r.AckedBy, AckedAt: r.AckedAt, Reason: r.Reason,
			Ackable: r.State != "resolved" && d.pipeline.CanAck(ctx, r.ID, r.Fingerprint)}
	}), err
}

// Outbox lists the alerts waiting for a channel.
func (d *Daemon) Outbox(ctx context.Context) ([]web.OutboxEntry, error) {
	rows, err := d.pipeline.Pending(ctx)
	return convert(rows, func(r alert.OutboxEntry) web.OutboxEntry { return web.OutboxEntry(r) }), err
}

// Ack acknowledges an alert's incident.
func (d *Daemon) Ack(ctx context.Context, id int64, by string) error {
	return notFound(d.pipeline.Ack(ctx, id, by))
}

// Unack withdraws the ack of an alert's incident.
func (d *Daemon) Unack(ctx context.Context, id int64) error {
	return notFound(d.pipeline.Unack(ctx, id))
}

// Silences lists the active silences.
func (d *Daemon) Silences(ctx context.Context) ([]web.Silence, error) {
	return convert(d.pipeline.Silences(), func(s alert.Silence) web.Silence { return web.Silence(s) }), nil
}

// Silence adds a silence.
func (d *Daemon) Silence(ctx context.Context, s web.Silence) (web.Silence, error) {
	got, err := d.pipeline.Silence(ctx, alert.Silence(s))
	if errors.Is(err, alert.ErrBadSilence) {
		// 422 with the problem itself, not "invalid: bad silence: …".
		err = &web.Error{Status: http.StatusUnprocessableEntity, Code: "invalid",
			Message: strings.TrimPrefix(err.Error(), alert.ErrBadSilence.Error()+": ")}
	}
	return web.Silence(got), err
}

// Expire ends a silence now.
func (d *Daemon) Expire(ctx context.Context, id int64) error {
	return notFound(d.pipeline.Expire(ctx, id))
}

// notFound marks the pipeline's "no such alert/silence" for the API.
func notFound(err error) error {
	if errors.Is(err, alert.ErrNotFound) {
		return fmt.Errorf("%w: %w", web.ErrNotFound, err)
	}
	return err
}

// History returns the recorded samples since a time, for the charts.
func (d *Daemon) History(ctx context.Context, since time.Time) ([]engine.Sample, error) {
	return d.data.Metrics.Samples(ctx, since, time.Now().Add(time.Minute))
}
