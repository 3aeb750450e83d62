package alert

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Issue 14, item 6 (field case 13): over a whole year, for schedules at times that do
// not exist or happen twice on daylight-saving days, and for specs that match several
// times a day, there is exactly one report per calendar day in the zone, each after the
// previous one.
func TestDailyExactlyOncePerCalendarDay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ zone, spec string }{
		{"Europe/Berlin", "30 2 * * *"},       // 02:30 is skipped in March, doubled in October
		{"Europe/Berlin", "0 9 * * *"},        // the default
		{"America/New_York", "30 1 * * *"},    // doubled in November
		{"America/New_York", "0 2 * * *"},     // skipped in March
		{"Australia/Lord_Howe", "15 2 * * *"}, // a half-hour change
		{"Europe/Berlin", "*/20 * * * *"},     // several times a day: the first one counts
		{"UTC", "0 0 * * *"},
	} {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Skip("no tzdata:", err)
		}
		d, err := ParseDaily(tc.spec, loc)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 1, 1, 12, 0, 0, 0, loc)
		perDay := map[string]int{}
		var last time.Time
		now := start
		for i := 0; i < 365; i++ {
			next := d.Next(now, last)
			if !next.After(last) || next.Before(now) {
				t.Fatalf("%s %q: report %d at %v, after the previous at %v (now %v)", tc.zone, tc.spec, i, next, last, now)
			}
			if !last.IsZero() && next.Sub(last) > 26*time.Hour {
				t.Fatalf("%s %q: %v between reports (%v → %v)", tc.zone, tc.spec, next.Sub(last), last.In(loc), next.In(loc))
			}
			perDay[next.In(loc).Format("2006-01-02")]++
			last, now = next, next
		}
		for day := start.AddDate(0, 0, 1); day.Before(start.AddDate(0, 0, 365)); day = day.AddDate(0, 0, 1) {
			if n := perDay[day.Format("2006-01-02")]; n != 1 {
				t.Fatalf("%s %q: %d reports on %s", tc.zone, tc.spec, n, day.Format("Mon 2006-01-02"))
			}
		}
	}
	loc, _ := time.LoadLocation("Europe/Berlin")
	d, _ := ParseDaily("30 2 * * *", loc)
	// The skipped 02:30 of 29 March 2026 runs when the clock jumps, at 03:00 CEST.
	if got := d.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, loc), time.Date(2026, 3, 28, 2, 30, 0, 0, loc)); !got.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("on the spring-forward night: %v", got.In(loc))
	}
	// The doubled 02:30 of 25 October runs once, the first time (CEST).
	if got := d.Next(time.Date(2026, 10, 24, 12, 0, 0, 0, loc), time.Date(2026, 10, 24, 2, 30, 0, 0, loc)); !got.Equal(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)) {
		t.Fatalf("on the fall-back night: %v", got.In(loc))
	}
	// Down at report time: due at once when remedy is back, then tomorrow.
	back := time.Date(2026, 5, 6, 11, 0, 0, 0, loc)
	if got := d.Next(back, time.Date(2026, 5, 5, 2, 30, 0, 0, loc)); !got.Equal(back) {
		t.Fatalf("a missed report: %v", got)
	}
	if got := d.Next(back, back); !got.Equal(time.Date(2026, 5, 7, 2, 30, 0, 0, loc)) {
		t.Fatalf("after the catch-up: %v", got)
	}
}

// The scheduler sends one report a day, each covering since the previous one, and a
// restart on the same day does not send it again.
func TestScheduleCoversSinceThePreviousReport(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		var mu sync.Mutex
		var runs []time.Time
		r := &Reporter{DB: db, OnReport: func(at time.Time, _ string) { mu.Lock(); runs = append(runs, at); mu.Unlock() }}
		run := func(d time.Duration) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { r.Schedule(ctx, "0 9 * * *", time.UTC); close(done) }()
			time.Sleep(d)
			synctest.Wait()
			cancel()
			<-done
		}
		run(10*time.Hour + 26*time.Hour) // bubble starts 2000-01-01 00:00 UTC: reports on the 1st and 2nd at 09:00
		run(time.Hour)                   // a restart at 11:00 on the 2nd: nothing
		run(24 * time.Hour)              // the 3rd at 09:00
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 3 {
			t.Fatalf("%d reports: %v", len(runs), runs)
		}
		var rows []struct {
			TS    int64 `db:"ts"`
			Since int64 `db:"since"`
		}
		db.Select(context.Background(), &rows, `SELECT ts, since FROM reports ORDER BY id`)
		for i := 1; i < len(rows); i++ {
			if rows[i].Since != rows[i-1].TS {
				t.Fatalf("report %d covers since %v, the previous was at %v", i, time.UnixMilli(rows[i].Since), time.UnixMilli(rows[i-1].TS))
			}
		}
	})
}
