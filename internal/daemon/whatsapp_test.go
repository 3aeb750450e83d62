package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// startWithWhatsApp starts the daemon with WhatsApp on against a fresh fake server, the
// device paired (or not), admins as given; with paired it waits until connected.
func startWithWhatsApp(t *testing.T, paired bool, mutate func(*config.Config), admins ...string) (*running, *wafake.Server) {
	t.Helper()
	return startWithWhatsAppOpts(t, paired, mutate, nil, admins...)
}

// startWithWhatsAppOpts is startWithWhatsApp with daemon options.
func startWithWhatsAppOpts(t *testing.T, paired bool, mutate func(*config.Config), opts []Option, admins ...string) (*running, *wafake.Server) {
	t.Helper()
	s, err := wafake.New()
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the daemon, so it runs after the daemon stops (cleanups run last
	// in, first out): a server closing under a shutting-down client trips a race inside
	// whatsmeow.
	t.Cleanup(s.Close)
	store := filepath.Join(t.TempDir(), "whatsapp.db")
	if paired {
		if err := wafake.PairedStore(context.Background(), store); err != nil {
			t.Fatal(err)
		}
	}
	r := startDaemon(t, func(c *config.Config) {
		c.WhatsApp = config.WhatsApp{Enabled: true, Store: store, Admins: admins, SendPerMinute: 10}
		if mutate != nil {
			mutate(c)
		}
	}, append([]Option{WithWhatsAppHTTP(s.HTTPClient())}, opts...)...)
	if paired {
		r.waitWhatsApp("connected")
	}
	return r, s
}

func (r *running) waitWhatsApp(state string) {
	r.t.Helper()
	r.eventually(state, func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"whatsapp": "`+state+`"`)
	})
}

// remedy run with WhatsApp on, against the fake server: connected, readiness, the
// dashboard's state, and a dropped connection healed by the default wa-reconnect policy
// through RECONNECT_WA.
func TestDaemonKeepsWhatsAppConnected(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) { c.Policies, c.DefaultPolicies = "", true }, "+6281100000001") // the embedded default policies
	if code, b := r.do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("readyz %d %s", code, b)
	}
	s.DropAll()
	r.eventually("the reconnect through the policy", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"action": "RECONNECT_WA"`) && strings.Contains(b, `"outcome": "succeeded"`)
	})
	r.eventually("connected again", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"whatsapp": "connected"`) && s.Logins() == 2
	})
	_, b := r.do("GET", "/metrics", "")
	if !strings.Contains(b, `remedy_events_total{code="WA_DISCONNECTED"} 1`) {
		t.Fatalf("metrics: %s", b)
	}
}

// Pairing from the dashboard: an unpaired device, the Pair call, the QR code as a PNG
// the page can show; a second Pair while one runs is refused; QR 404s once it ends.
func TestDaemonPairsFromTheDashboard(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, false, nil)
	if code, _ := r.do("GET", "/api/v1/whatsapp/qr", ""); code != 404 {
		t.Fatalf("QR before pairing: %d", code)
	}
	if code, b := r.do("POST", "/api/v1/whatsapp/pair", ""); code != 202 {
		t.Fatalf("pair: %d %s", code, b)
	}
	var body string
	r.eventually("a QR code", func() bool {
		var code int
		code, body = r.do("GET", "/api/v1/whatsapp/qr", "")
		return code == 200
	})
	var qr struct{ PNG string }
	if err := json.Unmarshal([]byte(body), &qr); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr.PNG, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR image: %v %v", err, img)
	}
	if code, b := r.do("POST", "/api/v1/whatsapp/pair", ""); code != 409 {
		t.Fatalf("second pair: %d %s", code, b)
	}
	s.DropAll()
	r.eventually("the attempt ends, and the page is told why", func() bool {
		code, b := r.do("GET", "/api/v1/whatsapp/qr", "")
		return code == 404 && strings.Contains(b, "The last pairing attempt failed. No phone linked this device before the codes ran out. Press Pair again")
	})
	if _, b := r.do("GET", "/api/v1/status", ""); !strings.Contains(b, `"whatsapp": "unpaired"`) {
		t.Fatalf("status %s", b)
	}
}

// The same from the page, in Chromium: the Pair card shows for an unpaired device, the
// button starts pairing, and the QR code is drawn.
func TestDashboardPairingInChromium(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r, _ := startWithWhatsApp(t, false, nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#pair-card`),
		chromedp.Click(`#pair-start`), chromedp.WaitVisible(`#pair-qr`)); err != nil {
		t.Fatal(err)
	}
	w, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("#pair-qr").naturalWidth`))
	if err != nil || w < 100 {
		t.Fatalf("QR image width %v: %v", w, err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err == nil {
		artifact(t, "dashboard-pairing.png", shot)
	}
}

// Alerts raised while WhatsApp is down wait in the outbox; after the reconnect they go
// to the admin through the real client, encrypted, grouped in one message. (The fake
// server cannot read the text; the grouping and order are checked in internal/alert.)
func TestAlertsWaitForWhatsAppAndGoOutOnce(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, nil, "+6281100000009")
	s.Down() // the test's policies have no reconnect: it stays down until the test says
	r.waitWhatsApp("disconnected")
	for _, part := range []string{"a", "b", "c"} {
		r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"`+part+`"}}`)
	}
	// Three alerts, and after three failed tries the alert-undelivered alert about them.
	r.eventually("the alerts waiting for WhatsApp", func() bool {
		_, b := r.do("GET", "/api/v1/outbox", "")
		return strings.Count(b, `"channel": "whatsapp"`) >= 3
	})
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages while down", n)
	}
	s.Up()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.sessions.Default().Conn().Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	r.eventually("the outbox drained", func() bool {
		_, b := r.do("GET", "/api/v1/outbox", "")
		return !strings.Contains(b, `"channel": "whatsapp"`)
	})
	// The outbox hands the alerts to the session's paced send path (its outbound
	// queue): they are sent once that queue is empty again.
	r.eventually("the session's outbound queue sent them", func() bool {
		return r.d.sessions.Default().Info(context.Background()).OutboundDepth == 0 && len(s.Messages()) > 0
	})
	// Everything that waited goes out grouped in one message; at most one more follows
	// (alert-undelivered resolving once WhatsApp delivers again).
	ms := s.Messages()
	t.Logf("messages after the reconnect: %d", len(ms))
	if len(ms) < 1 || len(ms) > 2 {
		t.Fatalf("server saw %d messages, want the waiting alerts grouped: %+v", len(ms), ms)
	}
	for _, m := range ms {
		if m.To != "6281100000009" || m.Ciphertexts < 1 {
			t.Fatalf("message %+v", m)
		}
	}
}

// The admin chat over the real protocol: an admin's encrypted "!status" is decrypted,
// answered, and the answer goes back to the admin encrypted; the same command from a
// stranger gets no answer and is audited as refused.
func TestAdminChatOverWhatsApp(t *testing.T) {
	t.Parallel()
	r, s := startWithWhatsApp(t, true, func(c *config.Config) {
		os.WriteFile(filepath.Join(c.Policies, "open.yaml"), []byte("policies:\n  - name: held-open\n    on: [HOLD_OPEN]\n    resolve_on: [HOLD_CLOSED]\n    alert: {channels: [log]}\n"), 0o644)
	}, "+6281100000009")
	ctx := context.Background()
	send := func(number, text string) {
		p, err := wafake.NewPhone(ctx, t.TempDir(), number)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		s.Each(func(fc *wafake.Conn) {
			if _, err := p.Send(ctx, fc, r.d.sessions.Default().Conn().Client().Store, text); err != nil {
				t.Error(err)
			}
		})
	}
	send("6281100000066", "!status") // a stranger first
	send("6281100000009", "!status")
	r.eventually("the answer to the admin", func() bool {
		for _, m := range s.Messages() {
			if m.To == "6281100000009" {
				return true
			}
		}
		return false
	})
	r.eventually("the stranger audited", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Contains(b, `"action": "ADMIN_COMMAND"`) && strings.Contains(b, "6281100000066")
	})
	for _, m := range s.Messages() {
		if m.To == "6281100000066" {
			t.Fatalf("the stranger got an answer: %+v", m)
		}
	}

	// !silence from the chat holds the next custom-fault alert back from every channel.
	send("6281100000009", "!silence 1h custom-fault")
	r.eventually("the silence", func() bool {
		_, b := r.do("GET", "/api/v1/silences", "")
		return strings.Contains(b, `"policy": "custom-fault"`) && strings.Contains(b, "6281100000009")
	})
	r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"silenced"}}`)
	r.eventually("the alert held as silenced", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Contains(b, `"held": "silenced`)
	})
	if _, b := r.do("GET", "/api/v1/outbox", ""); strings.Contains(b, `"channel": "whatsapp"`) {
		t.Fatalf("a silenced alert waits for WhatsApp: %s", b)
	}
	// !ack from the chat is recorded against the alert of an open incident (an ack
	// belongs to an incident; a resolved one cannot be acknowledged).
	r.do("POST", "/api/v1/events", `{"code":"HOLD_OPEN"}`)
	var alerts []struct {
		ID     int64
		Policy string
	}
	r.eventually("the held-open alert", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		alerts = nil
		json.Unmarshal([]byte(b), &alerts)
		return len(alerts) > 0 && alerts[0].Policy == "held-open"
	})
	send("6281100000009", fmt.Sprintf("!ack %d", alerts[0].ID))
	r.eventually("the ack", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Contains(b, `"acked_by": "6281100000009"`) || strings.Contains(b, `"acked_by": "+6281100000009"`)
	})
}
