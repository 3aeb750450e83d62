package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/policies"
)

// LogChannel writes alerts to the structured log; it never fails.
type LogChannel struct{ Logger *slog.Logger }

// Name is "log".
func (LogChannel) Name() string { return "log" }

// Send logs each alert.
func (c LogChannel) Send(ctx context.Context, alerts []Alert) error {
	for _, a := range alerts {
		c.Logger.Warn("alert", "policy", a.Policy, "instance", a.Instance, "severity", a.Severity, "state", a.State,
			"summary", a.Summary, "suppressed", a.Suppressed, "id", a.ID)
	}
	return nil
}

// DashboardChannel marks alerts as shown: the dashboard reads the alerts table and the
// live stream, so there is nothing to send.
type DashboardChannel struct{}

// Name is "dashboard".
func (DashboardChannel) Name() string { return "dashboard" }

// Send succeeds.
func (DashboardChannel) Send(context.Context, []Alert) error { return nil }

// WebhookChannel POSTs {"alerts":[…]} as JSON, signed with HMAC-SHA256 when a secret is
// set (actions.SignHeaders: X-Remedy-Timestamp and X-Remedy-Signature-V2, checked by
// webhook.Verify; the body-only X-Remedy-Signature beside them).
type WebhookChannel struct {
	URL    string
	Secret []byte
	Client *http.Client
}

// Name is "webhook".
func (WebhookChannel) Name() string { return "webhook" }

// Send posts the batch; any non-2xx answer is a failure.
func (c WebhookChannel) Send(ctx context.Context, alerts []Alert) error {
	body, err := json.Marshal(map[string]any{"alerts": alerts})
	if err != nil {
		return err
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if len(c.Secret) > 0 {
		actions.SignHeaders(h, c.Secret, body, time.Now())
	}
	return post(ctx, c.Client, c.URL, h, body)
}

// AlertmanagerChannel posts to an Alertmanager's /api/v2/alerts, so a fleet of remedy
// instances is routed, grouped and silenced by an existing Alertmanager. As Alertmanager's
// clients are expected to, it re-sends every open incident periodically (RefreshEvery)
// with an end a few periods ahead, so an incident whose remedy stopped ends on its own;
// a resolution ends every label set the incident was posted with (a severity change
// makes a new label set in Alertmanager's eyes).
type AlertmanagerChannel struct {
	URL    string // the Alertmanager's base URL
	Client *http.Client
	// Source names this remedy instance (label remedy_instance).
	Source string
	// Refresh is how often open incidents are re-sent (default 1m, Prometheus's
	// resend delay); a firing alert's endsAt is 4 × Refresh ahead, as Prometheus does.
	Refresh time.Duration
}

// Name is "alertmanager".
func (AlertmanagerChannel) Name() string { return "alertmanager" }

// RefreshEvery is how often the pipeline re-sends the open incidents.
func (c AlertmanagerChannel) RefreshEvery() time.Duration {
	if c.Refresh > 0 {
		return c.Refresh
	}
	return time.Minute
}

// InstantHold is how long an instant policy's alert (an occurrence, never resolved)
// stays active in Alertmanager: its default resolve_timeout.
const InstantHold = 5 * time.Minute

type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (c AlertmanagerChannel) postable(a Alert, sev policies.Severity, ends time.Time) postableAlert {
	labels := map[string]string{"alertname": a.Policy, "severity": string(sev)}
	for k, v := range a.Labels {
		labels[k] = v
	}
	if a.Instance != "" {
		labels["remedy_incident"] = a.Instance
	}
	if c.Source != "" {
		labels["remedy_instance"] = c.Source
	}
	ann := map[string]string{"summary": a.Summary}
	for k, v := range a.Annotations {
		ann[k] = v
	}
	if a.Reason != "" {
		ann["description"] = a.Reason
	}
	// Alertmanager refuses an alert that ends before it starts (the engine's time can be
	// a little ahead of this machine's).
	return postableAlert{Labels: labels, Annotations: ann, StartsAt: earlier(a.Time, ends).UTC(), EndsAt: ends.UTC()}
}

// Send posts the batch: each alert with its own label set, and an end for each label set
// in its Ends.
func (c AlertmanagerChannel) Send(ctx context.Context, alerts []Alert) error {
	now := time.Now()
	out := make([]postableAlert, 0, len(alerts))
	for _, a := range alerts {
		ends := now.Add(4 * c.RefreshEvery())
		switch {
		case a.State == "resolved":
			ends = earlier(a.Time, now)
		case a.Instant:
			ends = a.Time.Add(InstantHold)
		}
		out = append(out, c.postable(a, a.Severity, ends))
		for _, s := range a.Ends {
			if s != a.Severity {
				out = append(out, c.postable(a, s, earlier(a.Time, now)))
			}
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return post(ctx, c.Client, strings.TrimRight(c.URL, "/")+"/api/v2/alerts", http.Header{"Content-Type": {"application/json"}}, body)
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func post(ctx context.Context, client *http.Client, url string, h http.Header, body []byte) error {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return actions.HideURLError(err)
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		return actions.HideURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("%s answered %s: %s", actions.HideURL(url), resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Number is one WhatsApp session as the whatsapp channel uses it: its admins and its
// paced send path.
type Number struct {
	Session string
	Admins  []string
	// Ready says whether the number is connected; while it is not, its alerts wait in
	// the outbox (and go out grouped once it is).
	Ready func() bool
	// Send queues text for an admin on the session's own outbound path (its pace, its
	// chat stops: one budget per number), durably, under key: the same key again queues
	// nothing.
	Send func(ctx context.Context, to, text, key string) error
}

// WhatsAppChannel sends alerts to the admins of the WhatsApp sessions, several grouped
// in one message, through each session's paced outbound queue. An alert labelled with a
// session (label "session") goes to that session's admins from that number; one
// without (host-wide) goes to every session's admins, once per admin number, from the
// first session (in order) that lists it.
type WhatsAppChannel struct {
	// Numbers are the running sessions, in order.
	Numbers func() []Number
}

// Name is "whatsapp".
func (WhatsAppChannel) Name() string { return "whatsapp" }

// Send queues one message per admin and session: the alert, or "N alerts" with each,
// oldest first. It returns an error (and the pipeline keeps the alerts for a retry)
// while a session they go to is not connected; what went to the others is not queued
// twice on the retry of the same alerts (the idempotency key).
func (c WhatsAppChannel) Send(ctx context.Context, alerts []Alert) error {
	var nums []Number
	if c.Numbers != nil {
		nums = c.Numbers()
	}
	type dest struct{ session, admin string }
	var order []dest
	byDest := map[dest][]Alert{}
	add := func(d dest, a Alert) {
		if _, ok := byDest[d]; !ok {
			order = append(order, d)
		}
		byDest[d] = append(byDest[d], a)
	}
	for _, a := range alerts {
		if s := a.Labels["session"]; s != "" && slices.ContainsFunc(nums, func(n Number) bool { return n.Session == s }) {
			for _, n := range nums {
				if n.Session == s {
					for _, to := range n.Admins {
						add(dest{n.Session, to}, a)
					}
				}
			}
			continue
		}
		seen := map[string]bool{}
		for _, n := range nums {
			for _, to := range n.Admins {
				if k := digits(to); !seen[k] {
					seen[k] = true
					add(dest{n.Session, to}, a)
				}
			}
		}
	}
	if len(order) == 0 {
		return errors.New("whatsapp: no session or no admin numbers configured")
	}
	var errs []error
	for _, d := range order {
		i := slices.IndexFunc(nums, func(n Number) bool { return n.Session == d.session })
		n := nums[i]
		if n.Ready != nil && !n.Ready() {
			errs = append(errs, fmt.Errorf("whatsapp session %s: not connected", d.session))
			continue
		}
		as := byDest[d]
		errs = append(errs, n.Send(ctx, d.admin, alertText(as), alertKey(d.session, d.admin, as)))
	}
	return errors.Join(errs...)
}

// alertText is one alert's text, or "N alerts:" with each numbered.
func alertText(alerts []Alert) string {
	if len(alerts) == 1 {
		return alerts[0].Text()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d alerts:", len(alerts))
	for i, a := range alerts {
		fmt.Fprintf(&b, "\n\n%d. %s", i+1, a.Text())
	}
	return b.String()
}

// alertKey is the idempotency key of the message carrying alerts to an admin from a
// session: the same alerts again (a retry) queue nothing.
func alertKey(session, admin string, alerts []Alert) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s", session, digits(admin))
	for _, a := range alerts {
		fmt.Fprintf(h, "\x00%d:%s:%s:%d", a.ID, a.Fingerprint, a.State, a.Time.UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// digits is a phone number's digits, so that "+62 811-00" and "6281100" are one admin.
func digits(number string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, number)
}
