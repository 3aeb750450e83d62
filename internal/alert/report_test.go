package alert

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// The report runs at 09:00 in the configured zone, also across the change to summer time.
func TestReportAtNineAcrossDST(t *testing.T) {
	t.Parallel()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		var mu sync.Mutex // cron runs each job in a goroutine of its own
		var runs []time.Time
		r := &Reporter{DB: db, OnReport: func(at time.Time, _ string) { mu.Lock(); runs = append(runs, at); mu.Unlock() }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Schedule(ctx, "", loc); close(done) }()
		// The bubble starts on 2000-01-01; summer time began on Sunday 2000-04-02.
		until := time.Date(2000, 4, 4, 12, 0, 0, 0, loc)
		time.Sleep(time.Until(until))
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 95 { // 1 January to 4 April 2000, a leap year
			t.Fatalf("%d reports in 95 days", len(runs))
		}
		for _, at := range runs {
			if l := at.In(loc); l.Hour() != 9 || l.Minute() != 0 {
				t.Fatalf("a report at %v", l)
			}
		}
		last := runs[len(runs)-4:]
		utc := []int{last[0].UTC().Hour(), last[1].UTC().Hour(), last[2].UTC().Hour(), last[3].UTC().Hour()}
		if fmt.Sprint(utc) != "[14 13 13 13]" { // 1 April at 09:00 EST, then 09:00 EDT from 2 April
			t.Fatalf("UTC hours around the change: %v", utc)
		}
	})
}

func TestReportContent(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	now := time.Now()
	at := now.Add(-time.Hour)
	var ds []engine.Decision
	for i := 0; i < 4; i++ { // wa-reconnect fired 4 times, quietly
		ds = append(ds, engine.Decision{ID: uint64(i), Time: at, Kind: engine.KindState, Policy: "wa-reconnect", State: engine.Firing})
	}
	ds = append(ds, engine.Decision{ID: 9, Time: at, Kind: engine.KindState, Policy: "db-corrupt", State: engine.Firing},
		engine.Decision{ID: 10, Time: at, Kind: engine.KindAlert, Policy: "db-corrupt", State: engine.Firing, Alert: &engine.AlertNote{}})
	if err := db.InsertDecisions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	db.InsertAudit(ctx, []store.AuditEntry{{Policy: "wa-reconnect", Action: "RECONNECT_WA", Time: at, Outcome: "succeeded"},
		{Policy: "db-corrupt", Action: "CLEAN_DATA", Time: at, Outcome: "failed"}})
	db.Exec(ctx, `INSERT INTO alerts(fingerprint, ts, policy, severity, state, suppressed) VALUES ('f', ?, 'db-corrupt', 'critical', 'firing', 2)`, at.UnixMilli())
	r := &Reporter{DB: db}
	body, err := r.Build(ctx, now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Incidents: 5 (4 handled without paging anyone)", "wa-reconnect: 4", "RECONNECT_WA succeeded: 1",
		"CLEAN_DATA failed: 1", "Alerts: 1 sent, 0 held (silenced, inhibited, acknowledged), 2 rate-limited", "Flappiest: wa-reconnect (4 times)"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
	if err := r.Send(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, got, err := Latest(ctx, db); err != nil || got != body {
		t.Fatalf("stored report: %v", err)
	}
}

// TestHelperOutbox is the child of TestOutboxSurvivesKill: it queues alerts for a channel
// that cannot deliver, then waits to be killed.
func TestHelperOutbox(t *testing.T) {
	path := os.Getenv("REMEDY_ALERT_OUTBOX")
	if path == "" {
		t.Skip("helper process")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema})
	if err != nil {
		os.Exit(1)
	}
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{WebhookChannel{URL: "http://127.0.0.1:1/unreachable"}}})
	for i := 0; i < 5; i++ {
		p.Handle(ctx, alertDecision(fmt.Sprintf("policy-%d", i), "", engine.Firing, "critical", time.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	p.Deliver(ctx)
	fmt.Println("queued")
	select {}
}

func TestOutboxSurvivesKill(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "remedy.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOutbox$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REMEDY_ALERT_OUTBOX="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "queued") {
		t.Fatalf("helper: %q", buf[:n])
	}
	cmd.Process.Kill()
	cmd.Wait()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ch := &fakeChannel{name: "webhook"}
	p, _ := New(ctx, Options{DB: db, Channels: []Channel{ch}})
	db.Exec(ctx, `UPDATE alert_outbox SET next_attempt = 0`) // do not wait out the retry delay
	p.Deliver(ctx)
	if got := strings.Join(ch.delivered(), ","); got != "policy-0:firing,policy-1:firing,policy-2:firing,policy-3:firing,policy-4:firing" {
		t.Fatalf("after the restart: %q", got)
	}
}

// Next answers what Schedule will do: due now after a missed day (remedy was down at
// 09:00), tomorrow once today's report is stored, and the first 09:00 with none stored.
func TestReporterNextAgreesWithSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	r := &Reporter{DB: db}
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	at := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, loc) }
	check := func(now, want time.Time) {
		t.Helper()
		got, err := r.Next(ctx, "0 9 * * *", loc, now)
		if err != nil || !got.Equal(want) {
			t.Fatalf("Next at %v = %v, %v; want %v", now, got, err, want)
		}
	}
	check(at(10, 8), at(10, 9)) // none stored yet
	if _, err := db.Exec(ctx, `INSERT INTO reports(ts, since, body) VALUES (?, 0, 'x')`, at(10, 9).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	check(at(10, 10), at(11, 9))  // today's is out
	check(at(11, 10), at(11, 10)) // 11th's was missed: due now, not on the 12th
	if _, err := r.Next(ctx, "61 * * * *", loc, at(10, 8)); err == nil {
		t.Fatal("a bad spec gave no error")
	}
}

// With several sessions the report has a line per session: its share of connected
// samples, from its own wa_connected series; with the one "default", the one line.
func TestReportHasALinePerSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	m, err := store.OpenMetrics(ctx, store.Options{Path: filepath.Join(t.TempDir(), "m.sqlite")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Now().Truncate(time.Second)
	for i := range 4 {
		v := map[string]float64{"wa_connected_sales": 1, "wa_connected_support": float64(i % 2)}
		if err := m.InsertSample(ctx, engine.Sample{Time: now.Add(-time.Duration(i+1) * time.Minute), Values: v}); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reporter{DB: db, Metrics: m, Sessions: func() []string { return []string{"sales", "support", "spare"} }}
	body, err := r.Build(ctx, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WhatsApp connected, by session:", "  sales: 100.00% of samples", "  support: 50.00% of samples",
		"  spare: no samples"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
}
