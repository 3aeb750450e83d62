package alert

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// Reporter builds and sends the daily report.
type Reporter struct {
	DB       *store.DB
	Metrics  *store.Metrics // may be nil
	Pipeline *Pipeline      // may be nil: the report is only stored
	Logger   *slog.Logger
	// OnReport, if set, is called with each report (tests, the dashboard's live view).
	OnReport func(time.Time, string)
	// Sessions, if set, names the WhatsApp sessions: with more than the one "default",
	// the report has a line per session (its wa_connected, wa_connected_NAME).
	Sessions func() []string
}

// Build writes the report on the time from since to now.
func (r *Reporter) Build(ctx context.Context, since, now time.Time) (string, error) {
	from, to := since.UnixMilli(), now.UnixMilli()
	var b strings.Builder
	fmt.Fprintf(&b, "remedy daily report, %s to %s\n", since.Format("Mon 2 Jan 15:04"), now.Format("Mon 2 Jan 15:04 MST"))

	var incidents []struct {
		Policy string `db:"policy"`
		Fired  int    `db:"fired"`
		Alerts int    `db:"alerts"`
	}
	if err := r.DB.Select(ctx, &incidents, `SELECT policy,
		sum(kind = 'state' AND state = 'firing') AS fired,
		sum(kind = 'alert' AND state IN ('firing', 'escalated') ) AS alerts
		FROM decisions WHERE ts >= ? AND ts < ? GROUP BY policy HAVING fired > 0 ORDER BY fired DESC, policy`, from, to); err != nil {
		return "", err
	}
	total, quiet := 0, 0
	for _, i := range incidents {
		total += i.Fired
		if i.Alerts == 0 {
			quiet += i.Fired
		}
	}
	fmt.Fprintf(&b, "\nIncidents: %d (%d handled without paging anyone)\n", total, quiet)
	for i, inc := range incidents {
		if i == 5 {
			fmt.Fprintf(&b, "  … and %d more policies\n", len(incidents)-5)
			break
		}
		fmt.Fprintf(&b, "  %s: %d\n", inc.Policy, inc.Fired)
	}

	var acts []struct {
		Action  string `db:"action"`
		Outcome string `db:"outcome"`
		N       int    `db:"n"`
	}
	if err := r.DB.Select(ctx, &acts, `SELECT action, outcome, count(*) AS n FROM audit WHERE ts >= ? AND ts < ?
		AND action != 'HANDLER' GROUP BY action, outcome ORDER BY action, outcome`, from, to); err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "\nRecovery actions:")
	if len(acts) == 0 {
		b.WriteString(" none")
	}
	b.WriteString("\n")
	for _, a := range acts {
		fmt.Fprintf(&b, "  %s %s: %d\n", a.Action, a.Outcome, a.N)
	}

	var al struct {
		Sent       int `db:"sent"`
		Held       int `db:"held"`
		Suppressed int `db:"suppressed"`
	}
	if err := r.DB.Get(ctx, &al, `SELECT coalesce(sum(held = ''), 0) AS sent, coalesce(sum(held != ''), 0) AS held,
		coalesce(sum(suppressed), 0) AS suppressed FROM alerts WHERE ts >= ? AND ts < ?`, from, to); err != nil {
		return "", err
	}
	var pending int
	_ = r.DB.Get(ctx, &pending, `SELECT count(*) FROM alert_outbox WHERE delivered = 0`)
	fmt.Fprintf(&b, "\nAlerts: %d sent, %d held (silenced, inhibited, acknowledged), %d rate-limited", al.Sent, al.Held, al.Suppressed)
	if pending > 0 {
		fmt.Fprintf(&b, ", %d still waiting in the outbox", pending)
	}
	b.WriteString("\n")

	if r.Metrics != nil {
		if samples, err := r.Metrics.Samples(ctx, since, now); err == nil && len(samples) > 0 {
			var conn, connN, recv, fail float64
			for _, s := range samples {
				if v, ok := s.Values["wa_connected"]; ok {
					conn += v
					connN++
				}
				recv += s.Values["msgs_received_per_min"]
				fail += s.Values["msgs_failed_per_min"]
			}
			var names []string
			if r.Sessions != nil {
				names = r.Sessions()
			}
			if len(names) > 1 || len(names) == 1 && names[0] != "default" {
				b.WriteString("\nWhatsApp connected, by session:\n")
				for _, n := range names {
					key := "wa_connected_" + n
					if n == "default" {
						key = "wa_connected"
					}
					var c, cn float64
					for _, s := range samples {
						if v, ok := s.Values[key]; ok {
							c, cn = c+v, cn+1
						}
					}
					if cn == 0 {
						fmt.Fprintf(&b, "  %s: no samples (unpaired or not running)\n", n)
						continue
					}
					fmt.Fprintf(&b, "  %s: %.2f%% of samples\n", n, 100*c/cn)
				}
			} else if connN > 0 {
				fmt.Fprintf(&b, "\nWhatsApp connected: %.2f%% of samples\n", 100*conn/connN)
			}
			if recv > 0 {
				fmt.Fprintf(&b, "Messages: error rate %.2f%%\n", 100*fail/recv)
			}
		}
	}
	flappy := append([]struct {
		Policy string `db:"policy"`
		Fired  int    `db:"fired"`
		Alerts int    `db:"alerts"`
	}(nil), incidents...)
	sort.SliceStable(flappy, func(i, j int) bool { return flappy[i].Fired > flappy[j].Fired })
	if len(flappy) > 0 && flappy[0].Fired >= 3 {
		fmt.Fprintf(&b, "\nFlappiest: ")
		var parts []string
		for i := 0; i < len(flappy) && i < 3 && flappy[i].Fired >= 3; i++ {
			parts = append(parts, fmt.Sprintf("%s (%d times)", flappy[i].Policy, flappy[i].Fired))
		}
		b.WriteString(strings.Join(parts, ", ") + "\n")
	}
	return b.String(), nil
}

// Since is where a report at now starts: the previous report, or 24 hours before now.
func (r *Reporter) Since(ctx context.Context, now time.Time) time.Time {
	if last, _, err := Latest(ctx, r.DB); err == nil && last.Before(now) {
		return last
	}
	return now.Add(-24 * time.Hour)
}

// Send builds the report covering the time since the previous report (stored; the 24
// hours before now if there is none), stores it and sends it through the pipeline as an
// info alert of the pseudo-policy "daily-report".
func (r *Reporter) Send(ctx context.Context, now time.Time) error {
	since := r.Since(ctx, now)
	body, err := r.Build(ctx, since, now)
	if err != nil {
		return err
	}
	if _, err := r.DB.Exec(ctx, `INSERT INTO reports(ts, since, body) VALUES (?, ?, ?)`, now.UnixMilli(),
		since.UnixMilli(), body); err != nil {
		return err
	}
	if r.OnReport != nil {
		r.OnReport(now, body)
	}
	if r.Pipeline == nil {
		return nil
	}
	d := engine.Decision{Time: now, Kind: engine.KindAlert, Policy: "daily-report", Instance: now.Format("2006-01-02"),
		Severity: "info", State: engine.Firing, Labels: map[string]string{},
		Alert: &engine.AlertNote{Summary: body, Instant: true}}
	return r.Pipeline.Handle(ctx, d)
}

// DefaultReportSchedule is when the daily report goes out without report_schedule.
const DefaultReportSchedule = "0 9 * * *"

// Schedule sends the report on spec (default DefaultReportSchedule) in loc until ctx ends:
// exactly once per calendar day (Daily), each covering the time since the previous one,
// which is read from the database so a restart neither loses nor repeats a day. It
// returns an error only for a bad spec.
func (r *Reporter) Schedule(ctx context.Context, spec string, loc *time.Location) error {
	if spec == "" {
		spec = DefaultReportSchedule
	}
	if loc == nil {
		loc = time.Local
	}
	daily, err := ParseDaily(spec, loc)
	if err != nil {
		return err
	}
	last, _, err := Latest(ctx, r.DB)
	if err != nil {
		last = time.Time{} // no report yet
	}
	for {
		next := daily.Next(time.Now(), last)
		if next.IsZero() {
			return fmt.Errorf("report schedule %q: never runs", spec)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		now := time.Now()
		if err := r.Send(ctx, now.In(loc)); err != nil && r.Logger != nil {
			r.Logger.Error("daily report", "error", err)
		}
		last = now
	}
}

// Next is when Schedule will send the next report, seen at now: Daily.Next after the
// newest stored report (zero time: none yet). It returns an error only for a bad spec.
func (r *Reporter) Next(ctx context.Context, spec string, loc *time.Location, now time.Time) (time.Time, error) {
	daily, err := ParseDaily(cmp.Or(spec, DefaultReportSchedule), cmp.Or(loc, time.Local))
	if err != nil {
		return time.Time{}, err
	}
	last, _, err := Latest(ctx, r.DB)
	if err != nil {
		last = time.Time{} // no report yet
	}
	return daily.Next(now, last), nil
}

// Latest returns the newest stored report.
func Latest(ctx context.Context, db *store.DB) (time.Time, string, error) {
	var row struct {
		TS   int64  `db:"ts"`
		Body string `db:"body"`
	}
	if err := db.Get(ctx, &row, `SELECT ts, body FROM reports ORDER BY id DESC LIMIT 1`); err != nil {
		return time.Time{}, "", err
	}
	return time.UnixMilli(row.TS), row.Body, nil
}
