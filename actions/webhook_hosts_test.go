package actions

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// Issue 26, A16: a WEBHOOK url rendered from a template goes only to a host of
// webhook_hosts. The field case: the policy's url is
// 'http://{{ .labels.shop }}.hooks.example.com/notify' and an event's label is
// "127.0.0.1:PORT/ssrf-internal-admin?delete=all#": the attempt fails before anything
// is sent, and the audit says why. A url written out in the policy is not checked.
func TestTemplatedWebhookURLGoesOnlyToAllowedHosts(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	templated := func(id uint64, url string) engine.Decision {
		d := decision(id, "WEBHOOK", Params{"url": url}, 5*time.Second)
		d.Action.Templated = []string{"url"}
		return d
	}

	x, results, a := execExecutor(t, Deps{WebhookHosts: []string{"hooks.example.com", ".shops.example.com"}})
	ev := runOne(t, x, results, templated(1, "http://"+addr+"/ssrf-internal-admin?delete=all#.hooks.example.com/notify"))
	x.Wait(context.Background())
	if ev.Code != engine.CodeActionFailed || hits.Load() != 0 {
		t.Fatalf("the label's url: %s %q, %d requests reached the listener", ev.Code, ev.Message, hits.Load())
	}
	if at := a.all()[0]; at.Outcome != "failed" || !strings.Contains(at.Error, `host "127.0.0.1" is not in webhook_hosts`) {
		t.Fatalf("audit: %s %q", at.Outcome, at.Error)
	}
	// Written out in the policy file: the author chose it.
	if ev := runOne(t, x, results, decision(2, "WEBHOOK", Params{"url": srv.URL}, 5*time.Second)); ev.Code != engine.CodeActionSucceeded || hits.Load() != 1 {
		t.Fatalf("a literal url: %s %q", ev.Code, ev.Message)
	}

	// The kind: seeded random label values put into a templated url; invariant: a
	// request is sent exactly when the rendered url's host is allowed.
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	parts := []string{"127.0.0.1:1", "localhost", "hooks.example.com", "a.shops.example.com", "shops.example.com", "evil.test",
		"@", "#", "/", "?", ":80", "x", "HOOKS.EXAMPLE.COM.", "user:pw@", "[::1]", "%2e"}
	for i := range 200 {
		label := ""
		for range 1 + rng.IntN(4) {
			label += parts[rng.IntN(len(parts))]
		}
		url := "http://" + label + "/notify"
		err := checkTemplatedURL(url, []string{"hooks.example.com", ".shops.example.com"})
		host, ok := allowedHostOf(url)
		if (err == nil) != ok {
			t.Fatalf("case %d: %q: check %v, host %q allowed %v", i, url, err, host, ok)
		}
		if err != nil && !errors.Is(err, ErrURLNotAllowed) {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	// None configured: every templated url is refused.
	if err := checkTemplatedURL("https://hooks.example.com/x", nil); !errors.Is(err, ErrURLNotAllowed) {
		t.Fatalf("no webhook_hosts: %v", err)
	}
}

// allowedHostOf is the test's own reading of a URL's host (what net/http would dial)
// against the test's allow-list.
func allowedHostOf(raw string) (string, bool) {
	req, err := http.NewRequest("POST", raw, nil)
	if err != nil || req.URL.User != nil || req.URL.Host == "" {
		return "", false
	}
	h := strings.TrimSuffix(strings.ToLower(req.URL.Hostname()), ".")
	return h, h == "hooks.example.com" || strings.HasSuffix(h, ".shops.example.com")
}
