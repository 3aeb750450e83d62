package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
)

// Issue 25: a step with resolve_on showed "succeeded" for each attempt in Recovery
// actions while the incident said "every recovery step failed" and escalated. Each
// attempt is one row, and it says that its success did not hold, and why.
func TestSuccessThatDidNotHoldShowsOnce(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) {
		os.WriteFile(filepath.Join(c.Policies, "hold.yaml"), []byte(`policies:
  - name: hold-fault
    on: [HOLD_FAULT]
    resolve_on: [HOLD_FAULT_OK]
    actions:
      - {do: EXEC, with: {command: "true"}, timeout: 1s, attempts: 2, backoff: {initial: 100ms, max: 100ms, jitter: none}}
    alert: {channels: [log]}
`), 0o644)
	})
	r.do("POST", "/api/v1/events", `{"code":"HOLD_FAULT","source":"node-bot"}`)
	r.eventually("both attempts shown as not held", func() bool {
		_, b := r.do("GET", "/api/v1/actions", "")
		return strings.Count(b, `"outcome": "succeeded, did not hold"`) == 2
	})
	_, b := r.do("GET", "/api/v1/actions", "")
	if strings.Contains(b, `"outcome": "succeeded"`) || strings.Contains(b, `"outcome": "did not hold"`) ||
		!strings.Contains(b, "none of resolve_on arrived") {
		t.Fatalf("each attempt once, with its reason:\n%s", b)
	}
	// The dashboard's Recovery actions, in Chromium: one row per attempt, with the reason.
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitReady(`#audit tbody`)); err != nil {
		t.Fatal(err)
	}
	r.eventually("the dashboard's Recovery actions", func() bool {
		txt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#audit tbody").textContent`))
		return err == nil && strings.Count(txt, "succeeded, did not hold") == 2 && strings.Contains(txt, "none of resolve_on arrived")
	})
	r.eventually("the incident exhausted", func() bool {
		_, b := r.do("GET", "/api/v1/decisions?policy=hold-fault", "")
		return strings.Contains(b, `"state": "exhausted"`) && strings.Count(b, `"state": "not_held"`) == 2
	})
}
