package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
)

// A flapping incident through the real daemon (API, engine loop, alert pipeline,
// SQLite, /metrics) and the dashboard in Chromium: the flap's first notification is
// annotated, the rest are held and counted, /metrics has the flapping gauge and the
// rule view says how many notifications it holds. settle is 1h so the flap lasts the
// whole test, whatever the machine's speed.
func TestFlappingShownOnDashboardAndMetrics(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	pdir := filepath.Join(t.TempDir(), "policies")
	os.MkdirAll(pdir, 0o755)
	os.WriteFile(filepath.Join(pdir, "gw.yaml"), []byte(`policies:
  - name: gw-down
    on: [GW_DOWN]
    resolve_on: [GW_UP]
    severity: error
    alert: {flapping: {threshold: 4, settle: 1h}}
`), 0o644)
	r := startDaemon(t, func(c *config.Config) { c.Policies = pdir })
	for _, code := range []string{"GW_DOWN", "GW_UP", "GW_DOWN", "GW_UP", "GW_DOWN"} {
		if st, body := r.do("POST", "/api/v1/events", `{"code":"`+code+`"}`); st != 202 {
			t.Fatalf("%d %s", st, body)
		}
	}
	r.eventually("the flapping gauge", func() bool {
		_, m := r.do("GET", "/metrics", "")
		return strings.Contains(m, `remedy_policy_flapping_instances{policy="gw-down"} 1`)
	})
	r.eventually("the held notification in the status", func() bool {
		p := r.policy("gw-down")
		inst, _ := p["instances"].([]any)
		return len(inst) == 1 && inst[0].(map[string]any)["flap_held"] == float64(1) && inst[0].(map[string]any)["state"] == "firing"
	})
	// Four changes, four notifications (the fourth starts the flap); the fifth is held.
	r.eventually("the alerts stored", func() bool {
		_, b := r.do("GET", "/api/v1/alerts", "")
		return strings.Count(b, `"policy": "gw-down"`) == 4
	})
	if _, b := r.do("GET", "/api/v1/decisions?policy=gw-down", ""); !strings.Contains(b, `"state": "flapping"`) {
		t.Fatalf("no flapping decision in the audit: %s", b)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelector("#rules").textContent.includes("flapping: 1 notification(s) held until it settles")`,
			chromedp.WithPollingTimeout(browserWait))); err != nil {
		_, body := r.do("GET", "/api/v1/policies", "")
		t.Fatalf("the rule view does not show the flap: %v\n%s", err, body)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-flapping.png", shot)
}
