package web

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/engine"
)

// browserWait bounds a wait for the page (it catches "never", not "slow").
const browserWait = 30 * time.Second

// browser starts Debian's headless Chromium, or skips saying it is missing (as
// internal/daemon's browser tests do).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("SKIPPED, NOT PASSED: chromium is not installed (apt-get install -y chromium; .ci/run does this)")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1600),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true)}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute) // a safety net: Chromium on a loaded machine is slow
	t.Cleanup(cancelT)
	return ctx
}

// Issue 22: with three sessions the dashboard shows a card for each (the pair button
// only on the unpaired one, with why its last pairing failed, and no handler secret),
// pairs one from its card, and its session filters hide the other sessions' events
// (those loaded and those arriving live) and alerts.
func TestDashboardSessionsInChromium(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	now := time.Now()
	f := &fake{
		events: []engine.Event{ // newest first, as the store answers
			{Time: now, Code: "WA_DISCONNECTED", Source: "whatsapp", Labels: map[string]string{"session": "support"}},
			{Time: now.Add(-time.Second), Code: "WA_PAIR_ERROR", Source: "whatsapp", Labels: map[string]string{"session": "sales", "reason": "unreachable"}},
			{Time: now.Add(-2 * time.Second), Code: "WA_CONNECTED", Source: "whatsapp", Labels: map[string]string{"session": "default"}},
		},
		alerts: []Alert{
			{ID: 2, TS: now.UnixMilli(), Policy: "wa-disconnected", Instance: "support", Severity: "error", State: "firing", Summary: "support is down", Labels: map[string]string{"session": "support"}},
			{ID: 1, TS: now.UnixMilli() - 1000, Policy: "wa-pair-failed", Instance: "sales", Severity: "warning", State: "firing", Summary: "sales cannot pair", Labels: map[string]string{"session": "sales"}},
		},
	}
	fs := threeSessions()
	hub := NewHub()
	srv := httptest.NewServer(NewServer(Options{Backend: f, Hub: hub, ListenHost: "127.0.0.1", Sessions: fs}))
	t.Cleanup(srv.Close)

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#sessions .session").length === 3 && document.querySelectorAll("#events li").length === 3`,
			chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatal(err)
	}
	type card struct {
		Name, Text string
		Pair       bool
	}
	cards, err := chromedp.Run(ctx, chromedp.Evaluate[[]card](`[...document.querySelectorAll("#sessions .session")].map(c =>
		({name: c.dataset.session, text: c.textContent, pair: !!c.querySelector("button.pair")}))`))
	if err != nil {
		t.Fatal(err)
	}
	var names, withPair []string
	for _, c := range cards {
		names = append(names, c.Name)
		if c.Pair {
			withPair = append(withPair, c.Name)
		}
		if strings.Contains(c.Text, "hunter2") || strings.Contains(c.Text, "s3cret") {
			t.Errorf("card %s shows a secret: %s", c.Name, c.Text)
		}
	}
	if !slices.Equal(names, []string{"default", "sales", "support"}) || !slices.Equal(withPair, []string{"sales"}) {
		t.Fatalf("cards %v, a pair button on %v", names, withPair)
	}
	for _, want := range []struct{ card, text string }{
		{cards[0].Text, "+6281100000001"}, {cards[0].Text, "inbound 2 · outbound 1"}, {cards[0].Text, "handler https://bot.example/hook"},
		{cards[1].Text, "not paired"}, {cards[1].Text, "The last pairing attempt failed. WhatsApp could not be reached"},
		{cards[2].Text, "disconnected"}, {cards[2].Text, "outbound 7"},
	} {
		if !strings.Contains(want.card, want.text) {
			t.Errorf("card without %q: %s", want.text, want.card)
		}
	}
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#pair-card").classList.contains("hidden") &&
		!document.querySelector("#events-session").classList.contains("hidden")`))
	if err != nil || !hidden {
		t.Fatalf("the single pairing card shows, or the filter does not (%v)", err)
	}

	// The events filter: sales alone, then a live event of support stays hidden and
	// one of sales shows.
	visible := func() []string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#events li")].filter(li => !li.classList.contains("hidden")).map(li => li.dataset.session)`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(`#events-session`, "sales"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#events-session").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	if v := visible(); !slices.Equal(v, []string{"sales"}) {
		t.Fatalf("filtered to sales, the events of %v show", v)
	}
	hub.Publish("event", engine.Event{Time: time.Now(), Code: "WA_RECONNECTING", Source: "whatsapp", Labels: map[string]string{"session": "support"}})
	hub.Publish("event", engine.Event{Time: time.Now(), Code: "WA_PAIRING", Source: "whatsapp", Labels: map[string]string{"session": "sales"}})
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.querySelectorAll("#events li").length === 5`, chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatalf("the live events did not arrive: %v", err)
	}
	if v := visible(); !slices.Equal(v, []string{"sales", "sales"}) {
		t.Fatalf("filtered to sales after live events, the events of %v show", v)
	}

	// The alerts filter.
	if err := chromedp.Do(ctx, chromedp.SetValue(`#alerts-session`, "support"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#alerts-session").dispatchEvent(new Event("change"))`),
		chromedp.Poll[chromedp.Void](`(() => { const rows = [...document.querySelectorAll("#alerts tbody tr")];
			return rows.length === 1 && rows[0].dataset.session === "support"; })()`, chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatalf("the alerts filter: %v", err)
	}

	// Pair from the sales card: the backend is asked for sales, and its QR code shows
	// in that card.
	if err := chromedp.Do(ctx, chromedp.Click(`#sessions .session[data-session="sales"] button.pair`),
		chromedp.Poll[chromedp.Void](`(() => { const img = document.querySelector('#sessions .session[data-session="sales"] img.qr');
			return img && img.src.startsWith("data:image/png;base64,"); })()`, chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatalf("pairing from the card: %v", err)
	}
	if got := fs.pairCalls(); !slices.Equal(got, []string{"sales"}) {
		t.Fatalf("Pair called for %v", got)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("REMEDY_ARTIFACTS"); dir != "" {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "dashboard-sessions.png"), shot, 0o644)
	}
}

// One session looks as before: no session cards, no filters, the header's WhatsApp
// badge from the overview.
func TestDashboardOneSessionInChromium(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	f := &fake{events: []engine.Event{{Time: time.Now(), Code: "WA_CONNECTED", Source: "whatsapp", Labels: map[string]string{"session": "default"}}}}
	srv := httptest.NewServer(NewServer(Options{Backend: f, Hub: NewHub(), ListenHost: "127.0.0.1",
		QR: func() string { return "" }, Pair: func() error { return nil }, PairFailure: func() string { return "" }}))
	t.Cleanup(srv.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelector("#wa").textContent === "WhatsApp off" && document.querySelectorAll("#events li").length === 1`,
			chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatal(err)
	}
	// The page has asked for the sessions by now (before the overview it waited for).
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["#sessions-card", "#events-session", "#alerts-session"].filter(s => !document.querySelector(s).classList.contains("hidden"))`))
	if err != nil || len(shown) != 0 {
		t.Fatalf("with one session, %v show (%v)", shown, err)
	}
}
