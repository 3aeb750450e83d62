package daemon

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/internal/store"
)

// Issue 25, the screens: a queue the bot posts (queue_jobs_depth, at its own times) is
// drawn beside remedy's own queue (before: every series was aligned on the first one's
// sample times, so the bot's was all gaps); a resolved alert reads as resolved (before:
// red "critical" with the firing text); rows of ended incidents offer no Ack, and an ack
// the server refuses says so on the page (before: nothing, a 404 in the console).
func TestDashboardDrawsPostedQueuesAndResolvedAlerts(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r := startWithLoadPolicies(t)
	now := time.Now()
	var pts []store.Point
	for i := 180; i > 0; i-- { // half an hour: remedy's queue every 10 s, the bot's 3 s later
		at := now.Add(-time.Duration(i) * 10 * time.Second)
		pts = append(pts, store.Point{Time: at, Name: "queue_inbound_depth", Value: float64(i % 7)},
			store.Point{Time: at.Add(3 * time.Second), Name: "queue_jobs_depth", Value: float64(40 + i%30)})
	}
	if err := r.d.data.Metrics.Insert(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	// One incident that fires and resolves, one that stays firing.
	r.do("POST", "/api/v1/samples", `{"values":{"load_a":9}}`)
	r.eventually("load-a firing", func() bool { return latestState(r.alertRows(), "load-a") == "firing" })
	r.do("POST", "/api/v1/samples", `{"values":{"load_a":0, "load_b":9}}`)
	r.eventually("load-a resolved, load-b firing", func() bool {
		rows := r.alertRows()
		return latestState(rows, "load-a") == "resolved" && latestState(rows, "load-b") == "firing"
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"), chromedp.WaitVisible(`#plot-queues .uplot`), chromedp.WaitVisible(`#alerts tbody tr:not(.empty-row)`)); err != nil {
		t.Fatal(err)
	}
	type queueSeries struct {
		Label  string
		Values int
	}
	series, err := chromedp.Run(ctx, chromedp.Evaluate[[]queueSeries](`(() => {
		const u = plots.queues.u;
		return u.series.slice(1).map((s, i) => ({label: s.label, values: u.data[i + 1].filter(v => v != null).length})); })()`))
	if err != nil {
		t.Fatal(err)
	}
	drawn := map[string]int{}
	for _, s := range series {
		drawn[s.Label] = s.Values
	}
	if drawn["inbound"] < 150 || drawn["jobs"] < 150 {
		t.Errorf("queue chart: points per series %v, want both queues drawn", drawn)
	}
	type row struct {
		Policy, Severity, SevClass, State, Summary string
		Ack                                        bool
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](`[...document.querySelectorAll("#alerts tbody tr")].map(tr => ({
		policy: tr.cells[2].textContent, severity: tr.cells[1].textContent, sevClass: tr.cells[1].className, state: tr.cells[3].textContent,
		summary: tr.cells[4].textContent, ack: [...tr.querySelectorAll("button")].some(b => b.textContent === "Ack")}))`))
	if err != nil {
		t.Fatal(err)
	}
	sawResolved := false
	for _, rw := range rows {
		switch {
		case rw.Policy == "load-a" && rw.State == "resolved":
			sawResolved = true
			if rw.Severity != "resolved" || rw.SevClass != "sev-resolved" || !strings.HasPrefix(rw.Summary, "Resolved") || rw.Ack {
				t.Errorf("a resolved alert's row: %+v", rw)
			}
		case rw.Policy == "load-a": // the firing row of an incident that has resolved since
			if rw.Ack {
				t.Errorf("Ack offered on an ended incident's row: %+v", rw)
			}
		case rw.Policy == "load-b":
			if !rw.Ack {
				t.Errorf("no Ack on an open incident's row: %+v", rw)
			}
		}
	}
	if !sawResolved {
		t.Errorf("no resolved row among %+v", rows)
	}
	shot(t, ctx, "dashboard-posted-queue-resolved-alert.png")
	// The incident ends between the page's render and the click: the refusal is shown.
	r.do("POST", "/api/v1/samples", `{"values":{"load_b":0}}`)
	r.eventually("load-b resolved", func() bool { return latestState(r.alertRows(), "load-b") == "resolved" })
	var firingB int64
	for _, a := range r.alertRows() {
		if a.Policy == "load-b" && a.State == "firing" {
			firingB = a.ID
		}
	}
	msg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => { window.prompt = () => "night-shift"; await ack(`+strconv.FormatInt(firingB, 10)+`);
		return document.querySelector("#alerts-msg").textContent; })()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Could not acknowledge") || !strings.Contains(msg, "not open") {
		t.Errorf("a refused ack: page says %q", msg)
	}
	shot(t, ctx, "dashboard-refused-ack.png")
}
