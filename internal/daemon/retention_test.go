package daemon

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
)

// B3 and B4: GET status ran PRAGMA quick_check, a read of every page, on every call
// (2.4 s at 10 M events). Status now shows the scheduled check's last result and age:
// it touches the same statements on an empty database and on a large one, and pages
// damaged under it go unread by it (a separate quick_check finds them; the scheduled
// check reports them, see store's TestUnfinishedIntegrityCheckIsAFinding).
func TestStatusReadsNoPagesAtAnySize(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(c *config.Config) { c.CheckInterval = time.Hour })
	ctx := context.Background()
	db := r.d.data.Main
	// Queries counts every statement of the database, the writers' too, and each retry
	// of status's one write (the probe row /readyz writes too) when a writer holds the
	// lock: the least of many calls is status's own.
	cost := func() int64 {
		least := int64(1 << 62)
		for range 20 {
			q := db.Queries()
			r.d.Overview(ctx)
			least = min(least, db.Queries()-q)
		}
		return least
	}
	r.d.Overview(ctx) // first call: the reporter's schedule and the outbox are read once
	empty := cost()

	var evs []engine.Event
	for i := range 20000 {
		evs = append(evs, engine.Event{Time: time.Now().Add(-time.Hour + time.Duration(i)*time.Millisecond), Code: "BOT_NOTE",
			Labels: map[string]string{"n": fmt.Sprint(i)}, Message: strings.Repeat("history ", 6)})
	}
	if err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if got := cost(); got != empty {
		t.Errorf("status ran %d statements at 20,000 events, %d on an empty database", got, empty)
	}

	// Damage event pages under the running daemon: status, which reads no page, still
	// shows the last check's result; an independent quick_check proves the damage.
	garble(t, filepath.Join(r.dir, "data", store.RemedyFile), historyPages(t, db))
	// A write, so no connection answers from the pages it cached before the damage.
	if _, err := db.Exec(ctx, `INSERT INTO state(key, kind, data, updated) VALUES ('test.after', 'test', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
	o := r.d.Overview(ctx)
	if o.Database != "ok" {
		t.Errorf("status read the pages: database %q", o.Database)
	}
	ro, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, "data", store.RemedyFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var res string
	if err := ro.QueryRow(`PRAGMA quick_check`).Scan(&res); err == nil && res == "ok" {
		t.Fatal("the garbled pages were not damage: the test proves nothing")
	}

	// The shape: the integrity check's result and age, and the retention, in the JSON.
	_, body := r.do("GET", "/api/v1/status", "")
	var st struct {
		Integrity map[string]any `json:"integrity"`
		Retention struct {
			Tables []map[string]any `json:"tables"`
		} `json:"retention"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Integrity == nil || len(st.Retention.Tables) != len(store.RetainedTables()) {
		t.Errorf("status: %v %s", err, body)
	}
	_, metrics := r.do("GET", "/metrics", "")
	for _, want := range []string{`remedy_retention_pruned_rows_total{table="events"}`, `remedy_retention_oldest_row_age_seconds{table="audit"}`, "remedy_db_free_bytes"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// db-full's and disk-low's CLEAN_DATA (target metrics) also prunes remedy.db sooner
// than its retention: the space retention allows, not only the metrics'.
func TestCleanDataPrunesHistorySooner(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	ctx := context.Background()
	db := r.d.data.Main
	old := time.Now().Add(-20 * 24 * time.Hour) // inside the 30-day retention
	if err := db.InsertEvents(ctx, []engine.Event{{Time: old, Code: "BOT_NOTE"}, {Time: time.Now(), Code: "BOT_NOTE"}}); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := db.Get(ctx, &n, `SELECT count(*) FROM events WHERE ts <= ?`, old.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := r.d.pruner.Prune(ctx, time.Now()); err != nil || count() != 1 {
		t.Fatalf("the hourly pass deleted a 20-day-old event (30 days kept): %v", err)
	}
	rep, err := dataCleaner{r.d.data, r.d.pruner, r.d}.PruneMetrics(ctx)
	if err != nil || count() != 0 || !strings.Contains(rep, "retention shortened") {
		t.Fatalf("CLEAN_DATA metrics: %q, %v; %d old events left", rep, err, count())
	}
}

// The dashboard's Database card shows the retention of every table and the integrity
// check's last result (from GET status, in Chromium).
func TestDashboardShowsRetentionAndIntegrity(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	r := startDaemon(t, nil)
	if err := r.d.data.Main.InsertEvents(context.Background(), []engine.Event{{Time: time.Now().Add(-2 * time.Hour), Code: "BOT_NOTE"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.pruner.Prune(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := r.d.data.Main.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"/"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#retention tbody tr").length === `+fmt.Sprint(len(store.RetainedTables())),
			chromedp.WithPollingTimeout(browserWait))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#integrity").textContent + "|" + document.querySelector("#retention").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"integrity check: ok", "events30 d2 h old0", "alert_outbox"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Database card lacks %q:\n%s", want, text)
		}
	}
}
