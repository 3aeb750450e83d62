package daemon

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Pairing while WhatsApp's servers cannot be reached: the API and the Pair card say so
// in words with the next step (before: a raw Go error chain), the Events panel and the
// recorded history get WA_PAIR_ERROR, and the card still says it after a page reload
// (before, the message vanished).
func TestPairingErrorInWords(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r, s := startWithWhatsApp(t, false, nil)
	s.Down()
	if code, b := r.do("POST", "/api/v1/whatsapp/pair", ""); code != 202 {
		t.Fatalf("pair: %d %s", code, b)
	}
	const words = "remedy could not reach WhatsApp's servers: this machine seems to have no internet access, or a firewall or proxy blocks it. Check the connection, then press Pair again."
	r.eventually("the failure explained", func() bool {
		code, b := r.do("GET", "/api/v1/whatsapp/qr", "")
		return code == 404 && strings.Contains(b, "The last pairing attempt failed. "+words)
	})
	r.eventually("WA_PAIR_ERROR recorded", func() bool {
		_, b := r.do("GET", "/api/v1/events?limit=20", "")
		return strings.Contains(b, `"WA_PAIR_ERROR"`) && strings.Contains(b, `"reason": "unreachable"`) && strings.Contains(b, "could not reach")
	})
	if _, b := r.do("GET", "/api/v1/events?limit=20", ""); strings.Contains(b, "dial tcp") || strings.Contains(b, "connection refused") {
		t.Fatalf("the Go error chain reached the events: %s", b)
	}
	check := func(when string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const m = document.querySelector("#pair-msg");
			return m.classList.contains("error") && m.textContent.includes("could not reach WhatsApp's servers") && m.offsetHeight > 0; })()`,
			chromedp.WithPollingTimeout(browserWait))); err != nil {
			t.Fatalf("%s: the Pair card does not show the failure: %v", when, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#events").textContent.includes("WA_PAIR_ERROR")`,
			chromedp.WithPollingTimeout(browserWait))); err != nil {
			t.Fatalf("%s: not in the Events panel: %v", when, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#pair-card`)); err != nil {
		t.Fatal(err)
	}
	check("first load")
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(`#pair-card`)); err != nil {
		t.Fatal(err)
	}
	check("after a reload")
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		artifact(t, "dashboard-pairing-unreachable.png", shot)
	}
}
