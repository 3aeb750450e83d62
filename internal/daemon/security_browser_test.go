package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
)

// attackPage is a page of another site that tries what issue 15 found: "simple"
// requests that need no preflight (fetch with mode no-cors, text/plain), an HTML form
// posting JSON-looking text/plain into a hidden frame, a preflighted JSON post, and a
// cross-origin read. It reports what each attempt returned.
const attackPage = `<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" action="%[1]s/api/v1/silences" method="POST" enctype="text/plain" target="sink">
<input name='{"matchers":{"policy":"*"},"duration":"720h","author":"form","reason":"' value='"}'></form>
<script>
window.attack = async () => {
  const R = %[1]q, out = [];
  const silence = JSON.stringify({matchers: {policy: "*"}, duration: "720h", author: "evil"});
  const tries = [
    () => fetch(R + "/api/v1/silences", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: silence}),
    () => fetch(R + "/api/v1/silences", {method: "POST", mode: "no-cors", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: silence}),
    () => fetch(R + "/api/v1/events", {method: "POST", mode: "no-cors", body: JSON.stringify({code: "CUSTOM_FAULT", labels: {part: "evil"}})}),
    () => fetch(R + "/api/v1/reload", {method: "POST", mode: "no-cors"}),
    () => fetch(R + "/api/v1/silences", {method: "POST", headers: {"Content-Type": "application/json"}, body: silence}),
    () => fetch(R + "/api/v1/status").then((r) => r.text()),
  ];
  for (const t of tries) {
    try { const r = await t(); out.push(typeof r === "string" ? "read:" + r.slice(0, 40) : "sent:" + r.type); }
    catch (e) { out.push("error:" + e.message); }
  }
  await new Promise((done) => { document.getElementById("sink").onload = done; document.getElementById("f").submit(); });
  return out.join("|");
};
</script></body></html>`

// The state a cross-site page would have changed: silences, an ingested event, a reload
// (the reload writes a RELOAD row to the actions audit).
func crossSiteEffects(r *running) []string {
	var got []string
	if _, body := r.do("GET", "/api/v1/silences", ""); strings.TrimSpace(body) != "[]" {
		got = append(got, "silences: "+body)
	}
	if _, body := r.do("GET", "/api/v1/events", ""); strings.Contains(body, `"evil"`) {
		got = append(got, "the page's event was ingested")
	}
	if _, body := r.do("GET", "/api/v1/actions", ""); strings.Contains(body, `"RELOAD"`) {
		got = append(got, "the policies were reloaded")
	}
	return got
}

// Issue 15, item 1 and 2 in a real browser: a page of another site, open in the
// operator's Chromium, changes nothing and reads nothing; a DNS-rebinding page (its own
// name resolving to remedy's address, as Chromium's host resolver rule makes it here)
// gets no answer. The dashboard keeps working through an SSH-style tunnel and behind a
// reverse proxy that keeps the Host (allowed_hosts).
func TestChromiumCrossSitePageChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := browser(t, chromedp.Flag("host-resolver-rules", "MAP evil.test 127.0.0.1, MAP remedy.example.test 127.0.0.1"))
	r := startDaemon(t, func(c *config.Config) { c.AllowedHosts = []string{"remedy.example.test"} })
	port := r.base[strings.LastIndexByte(r.base, ':')+1:]

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, attackPage, r.base)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "evil.test", 1)
	if err := chromedp.Do(ctx, chromedp.Navigate(evilURL+"/")); err != nil {
		t.Fatal(err)
	}
	report, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.attack()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the page saw: %s", report)
	if strings.Contains(report, "read:") {
		t.Errorf("the page read an answer: %s", report)
	}
	if eff := crossSiteEffects(r); len(eff) > 0 {
		t.Fatalf("a cross-site page changed remedy: %s", strings.Join(eff, "; "))
	}

	// DNS rebinding: the page's own name now points at remedy.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://evil.test:"+port+"/api/v1/status")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, `"version"`) || !strings.Contains(text, "unknown_host") {
		t.Fatalf("a rebinding page read: %s", text)
	}

	// Through a tunnel (a TCP forward on another port, as ssh -L is) and behind a reverse
	// proxy keeping the Host, the dashboard works: it loads, and a silence made on the
	// page is created.
	tunnel := forward(t, strings.TrimPrefix(r.base, "http://"))
	target, _ := url.Parse(r.base)
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()
	proxyURL := strings.Replace(proxy.URL, "127.0.0.1", "remedy.example.test", 1)
	for i, base := range []string{"http://" + tunnel, proxyURL} {
		author := fmt.Sprintf("viewer-%d", i)
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#rules tbody tr`),
			chromedp.SendKeys(`#s-policy`, "custom-*"), chromedp.SendKeys(`#s-author`, author),
			chromedp.Click(`#silence-form button`),
			chromedp.Poll[chromedp.Void](`document.querySelector("#silences").textContent.includes("`+author+`")`, chromedp.WithPollingTimeout(browserWait)),
		); err != nil {
			t.Fatalf("dashboard through %s: %v", base, err)
		}
		if _, s := r.do("GET", "/api/v1/silences", ""); !strings.Contains(s, author) {
			t.Fatalf("silence through %s not created: %s", base, s)
		}
	}
}

// forward listens on a loopback port and copies every connection to addr both ways,
// as `ssh -L` does; it returns its address.
func forward(t *testing.T, addr string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}
