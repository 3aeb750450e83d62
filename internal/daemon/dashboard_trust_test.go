package daemon

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// shot saves a screenshot of the whole page to $REMEDY_ARTIFACTS.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, name, png)
}

// The dashboard of a first start (no configuration: the default policies, WhatsApp not
// paired, nothing happened yet) says what each empty panel will show, not bare headers;
// the charts say they wait for samples; the report says when it is due, on the
// configured schedule; the footer gives the build (before: "remedy dev").
func TestDashboardFirstStart(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r, _ := startWithWhatsApp(t, false, func(c *config.Config) {
		c.Policies, c.DefaultPolicies, c.ReportSchedule, c.Timezone = "", true, "30 7 * * *", "Asia/Kolkata"
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#pair-card`), chromedp.WaitVisible(`#alerts td.empty`)); err != nil {
		t.Fatal(err)
	}
	texts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({
		alerts: document.querySelector("#alerts td.empty").textContent,
		audit: document.querySelector("#audit td.empty").textContent,
		events: document.querySelector("#events-empty").offsetHeight > 0 ? document.querySelector("#events-empty").textContent : "",
		silences: document.querySelector("#silences").textContent,
		chart: [...document.querySelectorAll("#charts figure")].filter(f => !f.querySelector(".plot .uplot") && !f.querySelector(".empty:not(.hidden)")).map(f => f.id).join(" "),
		report: document.querySelector("#report").textContent,
		footer: document.querySelector("#footer").textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"alerts": "No alerts yet", "audit": "No recovery actions yet", "events": "No events yet",
		"silences": "No active silences", "report": `(report_schedule "30 7 * * *", Asia/Kolkata)`} {
		if !strings.Contains(texts[k], want) {
			t.Errorf("%s: %q, want %q", k, texts[k], want)
		}
	}
	if texts["chart"] != "" {
		t.Errorf("charts neither drawn nor saying why: %s", texts["chart"])
	}
	if !strings.Contains(texts["report"], "the next one is due") || strings.Contains(texts["footer"], "remedy dev,") || !strings.Contains(texts["footer"], "go1.") {
		t.Errorf("report %q, footer %q", texts["report"], texts["footer"])
	}
	shot(t, ctx, "dashboard-first-start.png")
}

// With an hour of data: the charts have a time axis, units, a fixed 0–100 scale for
// percentages (a CPU between 2.8 and 4.9 % stays low on the chart) and a gap where
// samples are missing; the Test dialog of memory-high is pre-filled with mem_percent and
// answers with a value (before: a CPU sample for every policy, mem_percent=NaN), and it
// opens in view wherever the page was scrolled.
func TestDashboardWithData(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r := startDaemon(t, func(c *config.Config) { c.DefaultPolicies = true })
	now := time.Now()
	var pts []store.Point
	for i := 60 * 6; i > 0; i-- { // the last hour at one sample per 10 s
		at := now.Add(-time.Duration(i) * 10 * time.Second)
		if i > 150 && i < 210 {
			continue // remedy was down for ten minutes
		}
		v := 2.8 + 2.1*(0.5+0.5*math.Sin(float64(i)/20))
		pts = append(pts, store.Point{Time: at, Name: "cpu_percent", Value: v}, store.Point{Time: at, Name: "mem_percent", Value: 41 + v},
			store.Point{Time: at, Name: "disk_free_percent", Value: 63}, store.Point{Time: at, Name: "msgs_received_per_min", Value: 20 + 10*v},
			store.Point{Time: at, Name: "msgs_failed_per_min", Value: v / 2}, store.Point{Time: at, Name: "error_rate", Value: v / 200})
	}
	if err := r.d.data.Metrics.Insert(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"cache"}}`)
	r.do("POST", "/api/v1/silences", `{"matchers":{"policy":"slow-burn"},"duration":"1d","author":"night-shift","reason":"known"}`)
	r.eventually("the action", func() bool { _, b := r.do("GET", "/api/v1/actions", ""); return strings.Contains(b, "EXEC") })
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#plot-cpu .uplot`), chromedp.WaitVisible(`#audit tbody tr:not(.empty-row)`)); err != nil {
		t.Fatal(err)
	}
	type chart struct {
		YMin, YMax float64
		Nulls      int
		Points     int
		XLabels    []string
		YLabels    []string
	}
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]chart](`(() => {
		const out = {};
		for (const id of ["cpu", "mem", "disk", "msgs", "errors"]) {
			const u = plots[id].u; // uPlot draws its axes on the canvas; _values are the tick labels drawn
			out[id] = {yMin: u.scales.y.min, yMax: u.scales.y.max, nulls: u.data[1].filter(v => v === null).length, points: u.data[0].length,
				xLabels: u.axes[0]._values.map(String), yLabels: u.axes[1]._values.map(String)};
		}
		return out; })()`))
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range charts {
		if len(c.XLabels) < 3 || !strings.Contains(strings.Join(c.XLabels, " "), ":") {
			t.Errorf("%s: no time axis: %v", id, c.XLabels)
		}
		if len(c.YLabels) < 2 || c.YMin != 0 {
			t.Errorf("%s: y axis %v from %v", id, c.YLabels, c.YMin)
		}
		if c.Nulls != 1 || c.Points < 300 {
			t.Errorf("%s: %d gap markers in %d points, want the ten missing minutes as one gap", id, c.Nulls, c.Points)
		}
	}
	for _, id := range []string{"cpu", "mem", "disk", "errors"} {
		c := charts[id]
		if c.YMax != 100 || !strings.HasSuffix(c.YLabels[len(c.YLabels)-1], "%") {
			t.Errorf("%s: a percentage from %v to %v (%v), want a fixed 0–100 %% scale", id, c.YMin, c.YMax, c.YLabels)
		}
	}
	if !strings.HasSuffix(charts["msgs"].YLabels[1], "/min") {
		t.Errorf("messages: no unit on %v", charts["msgs"].YLabels)
	}

	// The Test dialog, opened from the bottom of the page.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.body.scrollHeight)`),
		chromedp.Click(`#rules tbody tr[data-policy="memory-high"] button`), chromedp.WaitVisible(`#try`)); err != nil {
		t.Fatal(err)
	}
	type box struct {
		Top, Bottom, Height float64
		Input               string
	}
	b, err := chromedp.Run(ctx, chromedp.Evaluate[box](`(() => { const r = document.querySelector("#try").getBoundingClientRect();
		return {top: r.top, bottom: r.bottom, height: window.innerHeight, input: document.querySelector("#try-input").value}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Top < 0 || b.Bottom > b.Height || !strings.Contains(b.Input, `"mem_percent"`) || strings.Contains(b.Input, "cpu_percent") {
		t.Fatalf("dialog at %v..%v of %v, input %s", b.Top, b.Bottom, b.Height, b.Input)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`#try-run`),
		chromedp.Poll[chromedp.Void](`document.querySelector("#try-result").textContent.includes("condition true")`, chromedp.WithPollingTimeout(browserWait))); err != nil {
		res, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#try-result").textContent`))
		t.Fatalf("the example does not fire memory-high: %v\n%s", err, res)
	}
	if res, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#try-result").textContent`)); strings.Contains(res, "NaN") {
		t.Fatalf("result %s", res)
	}
	viewport, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-test-dialog.png", viewport)
	if err := chromedp.Do(ctx, chromedp.Click(`#try-close`), chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "dashboard-with-data.png")
	charts2, err := chromedp.Run(ctx, chromedp.Screenshot(`#charts`))
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-charts.png", charts2)
}

// A full disk, as the operator sees it: the badges and a screenshot.
func TestDashboardFullDisk(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r := startDaemon(t, func(c *config.Config) { c.HealthInterval = 200 * time.Millisecond; c.DefaultPolicies = true })
	clear := storeFaults[1].apply(t, r)
	defer clear()
	r.do("POST", "/api/v1/events", `{"code":"CUSTOM_FAULT","labels":{"part":"disk"}}`)
	r.eventually("the status saying full", func() bool {
		_, b := r.do("GET", "/api/v1/status", "")
		return strings.Contains(b, `"disk": "full: `)
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#disk`),
		chromedp.Poll[chromedp.Void](`document.querySelector("#disk").textContent.includes("full")`, chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatal(err)
	}
	// The viewport at once (the badges), then the whole page: the reserve's release lets
	// writes through again within seconds, and the page follows.
	top, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-full-disk.png", top)
	shot(t, ctx, "dashboard-full-disk-page.png")
}

// The Test box's example of every policy, posted as the page posts it, is accepted by
// the try API and wakes its policy.
func TestEveryExampleWakesItsPolicyThroughTheAPI(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.DefaultPolicies = true })
	_, body := r.do("GET", "/api/v1/policies", "")
	var ps []struct {
		Name    string         `json:"name"`
		Example map[string]any `json:"example"`
	}
	if err := json.Unmarshal([]byte(body), &ps); err != nil || len(ps) < 30 {
		t.Fatalf("%v: %d policies", err, len(ps))
	}
	for _, p := range ps {
		ex, _ := json.Marshal(p.Example)
		code, res := r.do("POST", "/api/v1/policies/"+p.Name+"/try", string(ex))
		if code != 200 || !strings.Contains(res, `"matched": true`) {
			t.Errorf("%s: %s: %d %s", p.Name, ex, code, res)
		}
	}
}
