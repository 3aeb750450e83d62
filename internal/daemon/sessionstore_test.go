package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
)

// b3-11: a session store that is not a database (8 KiB of garbage, as after a power
// cut) no longer stops remedy: it starts unpaired, keeps the damaged file beside the new
// one, sends the critical wa-logged-out (reason store_corrupt) to the alert webhook (a
// channel that does not need WhatsApp), says why in the status and on the dashboard's
// pairing card (Chromium), and other alerts still go out.
func TestCorruptSessionStoreStartsUnpairedAndSaysWhy(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	var mu sync.Mutex
	var hook []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hook = append(hook, string(b))
		mu.Unlock()
	}))
	defer hs.Close()
	var store string
	r, _ := startWithWhatsApp(t, false, func(c *config.Config) {
		c.Policies, c.DefaultPolicies = "", true
		c.Alerts.Webhook = &config.Endpoint{URL: hs.URL}
		store = c.WhatsApp.Store
		garbage := make([]byte, 8192)
		for i := range garbage {
			garbage[i] = byte(i*7919 + i/13)
		}
		if err := os.WriteFile(store, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	r.waitWhatsApp("unpaired")
	moved, _ := filepath.Glob(store + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("the damaged store was not kept aside: %v", moved)
	}
	_, st := r.do("GET", "/api/v1/status", "")
	if !strings.Contains(st, "could not be read") || !strings.Contains(st, filepath.Base(moved[0])) {
		t.Fatalf("status does not say why WhatsApp is unpaired: %s", st)
	}
	r.eventually("wa-logged-out (store_corrupt) at the alert webhook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range hook {
			if strings.Contains(b, `"policy":"wa-logged-out"`) && strings.Contains(b, "store_corrupt") && strings.Contains(b, `"severity":"critical"`) {
				return true
			}
		}
		return false
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#pair-card`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const m = document.querySelector("#pair-why");
		return m.offsetHeight > 0 && m.textContent.includes("could not be read") && m.textContent.includes("Pair the device again"); })()`,
		chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatalf("the pairing card does not say why: %v", err)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
		artifact(t, "dashboard-session-store-moved-aside.png", shot)
	}
}
