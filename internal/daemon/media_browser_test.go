package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"go.mau.fi/whatsmeow/proto/waE2E"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// Issue 26, A14 in a real browser: a customer sends two media messages, a script
// (text/javascript) that creates a silence of every policy and an HTML page that loads
// it from remedy's own origin; the operator opens the page's media URL in Chromium on
// the default configuration (no token). Media is never active content: both are
// downloads of a passive type, sandboxed and never sniffed, so no silence is created.
// The script uses a synchronous XMLHttpRequest so that, had it run, the silence exists
// when the page's load event ends Navigate (no waiting on time).
func TestChromiumIncomingMediaIsNeverActiveContent(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r, s := startWithWhatsApp(t, true, nil, "+6281100000009")
	bg := context.Background()
	p, err := wafake.NewPhone(bg, t.TempDir(), "6281100000078")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(body, typ string) string {
		img, err := s.PutImage([]byte(body), typ, "")
		if err != nil {
			t.Fatal(err)
		}
		var id string
		s.Each(func(fc *wafake.Conn) {
			n, err := p.PrepareMessage(bg, r.d.sessions.Default().Conn().Client().Store, &waE2E.Message{ImageMessage: img})
			if err != nil {
				t.Fatal(err)
			}
			id = n.Attrs["id"].(string)
			if err := fc.Send(n); err != nil {
				t.Fatal(err)
			}
		})
		url := "/api/v1/incoming/" + id + "/media"
		r.eventually("the media reference kept", func() bool { code, _ := r.do("GET", url, ""); return code == 200 })
		return url
	}
	script := send(`var x = new XMLHttpRequest(); x.open("POST", "/api/v1/silences", false);
x.setRequestHeader("Content-Type", "application/json");
x.send(JSON.stringify({matchers: {policy: "*"}, duration: "720h", author: "customer", reason: "xss"}));`, "text/javascript")
	page := send(fmt.Sprintf(`<!doctype html><html><body><script src="%s"></script></body></html>`, script), "text/html")

	for _, u := range []string{script, page} {
		resp, err := http.Get(r.base + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Security-Policy") != "sandbox; default-src 'none'" || h.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s served with %v", u, h)
		}
	}

	// A download aborts the navigation (net::ERR_ABORTED): that is the right outcome.
	navErr := chromedp.Do(ctx, chromedp.Navigate(r.base+page))
	t.Logf("navigation to the page's media: %v", navErr)
	if _, body := r.do("GET", "/api/v1/silences", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("a customer's media created a silence: %s", body)
	}
}
