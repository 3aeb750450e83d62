package alert

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remedy-run/remedy/actions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/webhook"
)

// phone is a WhatsApp sender that can be disconnected.
type phone struct {
	mu        sync.Mutex
	connected bool
	sent      map[string][]string
}

// number is the phone as the session "default" with admins.
func (p *phone) number(admins ...string) Number {
	return Number{Session: "default", Admins: admins,
		Ready: func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.connected },
		Send:  func(ctx context.Context, to, text, _ string) error { return p.SendText(ctx, to, text) }}
}

func (p *phone) SendText(ctx context.Context, to, text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected {
		return errors.New("not connected")
	}
	p.sent[to] = append(p.sent[to], text)
	return nil
}

// Alerts raised while WhatsApp is down wait in the outbox and go out after it reconnects,
// once each, oldest first, grouped in one message.
func TestWhatsAppDeliversAfterReconnectInOrder(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ph := &phone{sent: map[string][]string{}}
	admins := []string{"+6281100", "+6281200"}
	wa := WhatsAppChannel{Numbers: func() []Number { return []Number{ph.number(admins...)} }}
	p, _ := New(context.Background(), Options{DB: db, Channels: []Channel{wa}})
	ctx := context.Background()
	t0 := time.Now()
	for i, pol := range []string{"queue-stuck", "db-conn-lost", "service-down"} {
		p.Handle(ctx, alertDecision(pol, "x", engine.Firing, "error", t0.Add(time.Duration(i)*time.Second)))
		p.Deliver(ctx)
	}
	if len(ph.sent) != 0 {
		t.Fatal("sent while disconnected")
	}
	ph.mu.Lock()
	ph.connected = true // WA_CONNECTED: the daemon wakes the pipeline
	ph.mu.Unlock()
	p.Handle(ctx, alertDecision("cpu-high", "", engine.Firing, "warning", t0.Add(time.Hour))) // the outbox's retry delay is not yet over for the others
	p.RetryNow("whatsapp")                                                                    // what the daemon does on WA_CONNECTED: the retry delay is not waited out
	p.Deliver(ctx)
	p.Deliver(ctx)
	for _, admin := range admins {
		msgs := ph.sent[admin]
		if len(msgs) != 1 {
			t.Fatalf("%s got %d messages, want one grouped message: %q", admin, len(msgs), msgs)
		}
		m := msgs[0]
		if !strings.HasPrefix(m, "4 alerts:") || strings.Index(m, "queue-stuck") > strings.Index(m, "db-conn-lost") ||
			strings.Index(m, "service-down") > strings.Index(m, "cpu-high") {
			t.Fatalf("not oldest first: %s", m)
		}
	}
}

func TestAlertmanagerPayload(t *testing.T) {
	t.Parallel()
	var got []map[string]any
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer am.Close()
	c := AlertmanagerChannel{URL: am.URL, Source: "bot-7"}
	t0 := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	err := c.Send(context.Background(), []Alert{
		{Policy: "wa-logged-out", Severity: "critical", State: "firing", Summary: "logged out", Time: t0, Reason: "device removed",
			Annotations: map[string]string{"runbook": "MONITORING_GUIDE.md#whatsapp-logged-out"}},
		{Policy: "queue-stuck", Instance: "inbound", Severity: "error", State: "resolved", Summary: "moving", Time: t0.Add(time.Minute),
			Labels: map[string]string{"queue": "inbound"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%v", got)
	}
	l0 := got[0]["labels"].(map[string]any)
	a0 := got[0]["annotations"].(map[string]any)
	if l0["alertname"] != "wa-logged-out" || l0["severity"] != "critical" || l0["remedy_instance"] != "bot-7" ||
		a0["summary"] != "logged out" || a0["description"] != "device removed" {
		t.Fatalf("firing alert: %v", got[0])
	}
	// A firing alert ends 4 refresh periods ahead unless re-sent, as Prometheus does.
	if ends, _ := time.Parse(time.RFC3339Nano, got[0]["endsAt"].(string)); ends.Before(time.Now().Add(3*time.Minute)) || ends.After(time.Now().Add(5*time.Minute)) {
		t.Fatalf("firing endsAt %v, want about 4m ahead", got[0]["endsAt"])
	}
	if got[1]["endsAt"] != "2026-01-05T03:01:00Z" || got[1]["labels"].(map[string]any)["queue"] != "inbound" {
		t.Fatalf("resolved alert: %v", got[1])
	}
	bad := AlertmanagerChannel{URL: am.URL + "/nowhere"}
	if err := bad.Send(context.Background(), []Alert{{Policy: "x", Time: t0}}); err == nil {
		t.Fatal("404 accepted")
	}
}

// The alert webhook is signed with remedy's one scheme — the code that verifies the
// bot's handler deliveries (webhook.Read: timestamp.body) verifies it too; before, it
// carried only the body-only signature under the same header name, and that code failed
// on it — and with the body-only X-Remedy-Signature beside it, unchanged for receivers
// written before.
func TestWebhookChannelSigns(t *testing.T) {
	t.Parallel()
	var body, sig string
	var verr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body, sig = string(b), r.Header.Get(actions.SignatureHeader)
		verr = webhook.Verify([]byte("k"), r.Header.Get(webhook.TimestampHeader), r.Header.Get(webhook.SignatureHeader), b, time.Now(), 0)
	}))
	defer srv.Close()
	c := WebhookChannel{URL: srv.URL, Secret: []byte("k")}
	if err := c.Send(context.Background(), []Alert{{Policy: "p", Summary: "s"}}); err != nil {
		t.Fatal(err)
	}
	if sig != actions.Sign([]byte("k"), []byte(body)) || !strings.Contains(body, `"alerts":[{`) {
		t.Fatalf("%s %s", sig, body)
	}
	if verr != nil {
		t.Fatalf("the one scheme: %v", verr)
	}
}

func TestAlertText(t *testing.T) {
	t.Parallel()
	a := Alert{Policy: "queue-stuck", Instance: "inbound", Severity: "error", State: "escalated", Summary: "Queue inbound is stuck",
		Suppressed: 3, Reason: "2 consecutive failed attempts", Annotations: map[string]string{"runbook": "MONITORING_GUIDE.md#queue-stuck"},
		Time: time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)}
	want := "[ERROR, ESCALATED] queue-stuck (inbound): Queue inbound is stuck (+3 suppressed)\n2 consecutive failed attempts\nrunbook: MONITORING_GUIDE.md#queue-stuck\n2026-01-05 03:00:00 UTC"
	if a.Text() != want {
		t.Fatalf("%q", a.Text())
	}
}

// A webhook URL's secret (in the query or the path, as Slack's and Discord's are) never
// reaches a delivery error, which the log, the outbox's last_error, ALERT_UNDELIVERED and
// alert texts show: not when the endpoint is unreachable, not when it answers an error.
func TestDeliveryErrorsHideTheURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusForbidden)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, base := range []string{srv.URL, closed.URL} {
		for _, ch := range []Channel{
			WebhookChannel{URL: base + "/services/T0/B0/PATHSECRET?token=QUERYSECRET"},
			AlertmanagerChannel{URL: "http://user:PWSECRET@" + strings.TrimPrefix(base, "http://") + "/am/PATHSECRET?k=QUERYSECRET"},
		} {
			err := ch.Send(context.Background(), []Alert{{Policy: "p"}})
			if err == nil {
				t.Fatalf("%s: no error", ch.Name())
			}
			if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "127.0.0.1") {
				t.Fatalf("%s: %v", ch.Name(), err)
			}
		}
	}
}
