package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// rows counts a table's rows matching where.
func rows(t *testing.T, db *DB, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Get(context.Background(), &n, `SELECT count(*) FROM `+table+` WHERE `+where, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func put(t *testing.T, db *DB, q string, args ...any) int64 {
	t.Helper()
	res, err := db.Exec(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	id, _ := res.LastInsertId()
	return id
}

// alertRow stores one alert row of incident fp and returns its id.
func alertRow(t *testing.T, db *DB, fp, state string, at time.Time) int64 {
	return put(t, db, `INSERT INTO alerts(fingerprint, ts, policy, severity, state) VALUES (?, ?, 'p', 'error', ?)`, fp, at.UnixMilli(), state)
}

func outboxRow(t *testing.T, db *DB, alertID int64, at time.Time, delivered bool) {
	d := int64(0)
	if delivered {
		d = at.UnixMilli()
	}
	put(t, db, `INSERT INTO alert_outbox(alert_id, channel, created, delivered) VALUES (?, 'webhook', ?, ?)`, alertID, at.UnixMilli(), d)
}

// B2: remedy.db had no retention at all. Every table that grows loses its rows past
// their time, and keeps every row still needed however old: an undelivered outbox row
// and its alert, the alerts of an incident not resolved, a queued message's outgoing
// row, a dead letter not yet replayed, a silence still in force.
func TestRetentionKeepsWhatIsStillNeeded(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	now := time.Now()
	old, recent := now.Add(-400*day), now.Add(-time.Hour)
	for _, at := range []time.Time{old, recent} {
		ms := at.UnixMilli()
		put(t, db, `INSERT INTO events(ts, code) VALUES (?, 'X')`, ms)
		put(t, db, `INSERT INTO decisions(decision_id, ts, kind, policy) VALUES (1, ?, 'state', 'p')`, ms)
		put(t, db, `INSERT INTO audit(ts, policy, action) VALUES (?, 'p', 'EXEC')`, ms)
		put(t, db, `INSERT INTO reports(ts, since, body) VALUES (?, ?, 'r')`, ms, ms)
		put(t, db, `INSERT INTO quarantine(ts, tbl, row_id, data, reason) VALUES (?, 'events', 1, '', 'bad')`, ms)
		put(t, db, `INSERT INTO silences(matchers, starts, ends, created) VALUES ('{}', ?, ?, ?)`, ms, ms, ms)
		put(t, db, `INSERT INTO dead_letters(queue, item_id, enqueued, dead_at, replayed) VALUES ('outbound', 1, ?, ?, ?)`, ms, ms, ms)
		put(t, db, `INSERT INTO outgoing(id, chat, status, created, updated) VALUES (?, 'c', 'sent', ?, ?)`, "sent-"+strconv.FormatInt(ms, 10), ms, ms)
	}
	// Needed however old:
	put(t, db, `INSERT INTO silences(matchers, starts, ends, created) VALUES ('{}', ?, ?, ?)`, old.UnixMilli(), now.Add(day).UnixMilli(), old.UnixMilli())
	put(t, db, `INSERT INTO dead_letters(queue, item_id, enqueued, dead_at) VALUES ('outbound', 2, ?, ?)`, old.UnixMilli(), old.UnixMilli())
	put(t, db, `INSERT INTO outgoing(id, chat, status, created, updated) VALUES ('queued-old', 'c', 'queued', ?, ?)`, old.UnixMilli(), old.UnixMilli())
	// Incident A: fired and resolved long ago, both notices delivered: all of it goes.
	a1 := alertRow(t, db, "A", "firing", old)
	a2 := alertRow(t, db, "A", "resolved", old.Add(time.Minute))
	outboxRow(t, db, a1, old, true)
	outboxRow(t, db, a2, old, true)
	// Incident B: fired long ago and still firing: it stays, delivered or not.
	b1 := alertRow(t, db, "B", "firing", old)
	outboxRow(t, db, b1, old, true)
	// Incident C: resolved long ago, but its resolution is still undelivered.
	c1 := alertRow(t, db, "C", "firing", old)
	c2 := alertRow(t, db, "C", "resolved", old.Add(time.Minute))
	outboxRow(t, db, c1, old, true)
	outboxRow(t, db, c2, old, false)

	p := NewPruner(db, Keep{})
	if _, err := p.Prune(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table, where string
		want         int64
	}{
		{"events", "1", 1}, {"decisions", "1", 1}, {"audit", "1", 1}, {"reports", "1", 1}, {"quarantine", "1", 1},
		{"silences", "1", 2}, // the recent one and the one in force
		{"dead_letters", "replayed = 0", 1}, {"dead_letters", "replayed != 0", 1},
		{"outgoing", "status = 'queued'", 1}, {"outgoing", "status = 'sent'", 1},
		{"alerts", "fingerprint = 'A'", 0}, {"alerts", "fingerprint = 'B'", 1},
		{"alerts", "id = " + strconv.FormatInt(c2, 10), 1}, // its outbox row is pending
		{"alerts", "id = " + strconv.FormatInt(c1, 10), 0},
		{"alert_outbox", "delivered = 0", 1}, {"alert_outbox", "delivered != 0", 0},
	} {
		if got := rows(t, db, tc.table, tc.where); got != tc.want {
			t.Errorf("%s where %s: %d rows, want %d", tc.table, tc.where, got, tc.want)
		}
	}
	st := p.Status()
	if st.At.IsZero() || st.Err != "" {
		t.Fatalf("status after a pass: %+v", st)
	}
	for _, tr := range st.Tables {
		if tr.Table == "events" && (tr.Pruned != 1 || !tr.Oldest.Equal(time.UnixMilli(recent.UnixMilli()))) {
			t.Errorf("events: %+v, want 1 pruned and the oldest at %v", tr, recent)
		}
	}
}

// Sooner (CLEAN_DATA on a full disk) halves the retention at each call, never below the
// floor, and the configured retention holds again an hour later.
func TestSoonerHalvesDownToTheFloor(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	now := time.Now()
	for d := 1; d <= 30; d++ { // one event a day for 30 days
		put(t, db, `INSERT INTO events(ts, code) VALUES (?, 'X')`, now.Add(-time.Duration(d)*day+time.Minute).UnixMilli())
	}
	p := NewPruner(db, Keep{})
	want := []int64{15, 7, 3, 1, 1, 1} // days kept: 30/2, /4, /8 (3.75), /16, then the floor (1 day)
	for i, w := range want {
		if _, err := p.Sooner(context.Background(), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, db, "events", "1"); got != w {
			t.Fatalf("after %d calls: %d events, want %d", i+1, got, w)
		}
	}
	if k := p.effective(now.Add(2 * time.Hour)); k != p.Keep() {
		t.Errorf("two hours later the retention in force is %+v, want the configured %+v", k, p.Keep())
	}
}

// The kind behind B2: whatever the load, remedy.db stays within its retention. Seeded
// random weeks of simulated time (synctest) on a real SQLite file: bursts and lulls of
// events, incidents that open and resolve, deliveries that succeed or wait. After each
// hourly pass: no prunable row is older than its retention plus one pass; every row
// still needed is there; freed pages went back to the disk; and the status figures
// (Health, Integrity, the pruner's Status) cost no query, at any size.
func TestRetentionHoldsOverRandomWeeks(t *testing.T) {
	t.Parallel()
	seeds, weeks := 2, 3
	if testing.Short() || raceEnabled {
		seeds, weeks = 1, 1
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { retentionRun(t, seed, weeks) })
	}
}

func retentionRun(t *testing.T, seed uint64, weeks int) {
	synctest.Test(t, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				t.Logf("seed %d", seed)
			}
		}()
		rng := rand.New(rand.NewPCG(seed, 26))
		path := filepath.Join(t.TempDir(), "remedy.db")
		// Synced at checkpoints only: thousands of commits each waited for the disk
		// (most of the test's time without -race), and durability is not what it tests.
		db, err := Open(context.Background(), Options{Path: path, Schema: RemedySchema, CreatePragmas: []string{retentionPragma},
			syncAtCheckpoints: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		keep := Keep{Events: 3 * day, Decisions: 3 * day, Audit: 5 * day, Alerts: 5 * day, Outbox: 2 * day,
			Silences: day, DeadLetters: 2 * day, Outgoing: 2 * day, Reports: 7 * day, Quarantine: 4 * day}
		p := NewPruner(db, keep)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { p.Run(ctx, time.Hour); done <- struct{}{} }()
		go func() { db.RunHealth(ctx, 6*time.Hour); done <- struct{}{} }()

		type incident struct {
			fp       string
			firing   bool
			pending  []int64 // undelivered outbox rows
			lastRows []int64 // its alert rows
		}
		var open []*incident
		maxPerHour := 0
		var peakPages int64
		for h := 0; h < weeks*7*24; h++ {
			// A random rate for this hour: lulls, steady traffic, bursts.
			var n int
			switch rng.IntN(10) {
			case 0:
				n = 0
			case 9:
				n = 200 + rng.IntN(400)
			default:
				n = rng.IntN(60)
			}
			maxPerHour = max(maxPerHour, n)
			// The hour's n events spread over it, and a decision and an audit row for every
			// tenth; a statement per table (a statement per row cost seconds under -race).
			base := time.Now().UnixMilli()
			err := db.WithTx(context.Background(), func(ctx context.Context, tx *Tx) error {
				const hour = `WITH RECURSIVE i(x) AS (SELECT 0 WHERE ?1 > 0 UNION ALL SELECT x + 1 FROM i WHERE x + 1 < ?1) `
				const ts = `?2 + x * 3600000 / (?1 + 1)`
				for _, q := range []string{
					hour + `INSERT INTO events(ts, code, labels, message) SELECT ` + ts + `, 'USER_MSG', '{"seq":"1"}', 'an event of about the field size' FROM i`,
					hour + `INSERT INTO decisions(decision_id, ts, kind, policy) SELECT x, ` + ts + `, 'state', 'p' FROM i WHERE x % 10 = 0`,
					hour + `INSERT INTO audit(ts, policy, action) SELECT ` + ts + `, 'p', 'EXEC' FROM i WHERE x % 10 = 0`,
				} {
					if _, err := tx.Exec(ctx, q, n, base); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Incidents: open one now and then, resolve some, deliver some notices.
			now := time.Now()
			if rng.IntN(6) == 0 {
				inc := &incident{fp: fmt.Sprintf("f%d", h), firing: true}
				id := alertRow(t, db, inc.fp, "firing", now)
				inc.lastRows = append(inc.lastRows, id)
				delivered := rng.IntN(3) > 0
				outboxRow(t, db, id, now, delivered)
				if !delivered {
					inc.pending = append(inc.pending, id)
				}
				open = append(open, inc)
			}
			for _, inc := range open {
				if inc.firing && rng.IntN(20) == 0 {
					inc.firing = false
					id := alertRow(t, db, inc.fp, "resolved", now)
					inc.lastRows = append(inc.lastRows, id)
					outboxRow(t, db, id, now, true)
				}
				if len(inc.pending) > 0 && rng.IntN(30) == 0 { // a channel comes back
					put(t, db, `UPDATE alert_outbox SET delivered = ? WHERE alert_id = ?`, now.UnixMilli(), inc.pending[0])
					inc.pending = inc.pending[1:]
				}
			}
			if rng.IntN(24) == 0 {
				put(t, db, `INSERT INTO silences(matchers, starts, ends, created) VALUES ('{}', ?, ?, ?)`,
					now.UnixMilli(), now.Add(time.Duration(1+rng.IntN(48))*time.Hour).UnixMilli(), now.UnixMilli())
			}

			time.Sleep(time.Hour) // the hourly pass runs
			synctest.Wait()
			now = time.Now()

			// The status figures cost nothing at any size.
			q := db.Queries()
			_, _, _ = db.Health(), db.Integrity(), p.Status()
			if got := db.Queries() - q; got != 0 {
				t.Fatalf("hour %d: status figures ran %d queries, want 0", h, got)
			}
			st := p.Status()
			if st.Err != "" {
				t.Fatalf("hour %d: pass failed: %s", h, st.Err)
			}
			// Bounded: nothing prunable older than its retention plus one pass.
			for _, c := range []struct {
				table, where string
				keep         time.Duration
			}{
				{"events", "ts < ?", keep.Events}, {"decisions", "ts < ?", keep.Decisions}, {"audit", "ts < ?", keep.Audit},
				{"alert_outbox", "delivered != 0 AND created < ?", keep.Outbox}, {"silences", "ends < ?", keep.Silences},
			} {
				if n := rows(t, db, c.table, c.where, now.Add(-c.keep-time.Hour).UnixMilli()); n != 0 {
					t.Fatalf("hour %d: %s has %d rows past retention plus one pass", h, c.table, n)
				}
			}
			if n, bound := rows(t, db, "events", "1"), int64(maxPerHour)*int64((keep.Events+2*time.Hour)/time.Hour); n > bound {
				t.Fatalf("hour %d: %d events, more than %d (the most per hour × the hours kept)", h, n, bound)
			}
			// Needed rows stay: a firing incident's rows, and every undelivered notice's alert.
			for _, inc := range open {
				for _, id := range inc.pending {
					if rows(t, db, "alerts", "id = ?", id) != 1 || rows(t, db, "alert_outbox", "alert_id = ? AND delivered = 0", id) != 1 {
						t.Fatalf("hour %d: undelivered notice of alert %d was pruned", h, id)
					}
				}
				if inc.firing && rows(t, db, "alerts", "fingerprint = ?", inc.fp) == 0 {
					t.Fatalf("hour %d: firing incident %s lost its alerts", h, inc.fp)
				}
			}
			// Freed pages went back to the disk.
			if st.FreeBytes > vacuumStep*4096 {
				t.Fatalf("hour %d: %d free bytes left in the file after the pass", h, st.FreeBytes)
			}
			var pages int64
			if err := db.Get(context.Background(), &pages, `PRAGMA page_count`); err != nil {
				t.Fatal(err)
			}
			peakPages = max(peakPages, pages)
		}
		// The file's size follows what is kept: the last week's size is not above the
		// peak of the first week plus one burst's worth (it does not grow week on week).
		if fi, err := os.Stat(path); err == nil {
			t.Logf("seed %d: %d weeks, file %d KiB, peak %d pages, integrity %+v", seed, weeks, fi.Size()>>10, peakPages, db.Integrity())
		}
		if r := db.Integrity(); r.Result != "ok" {
			t.Errorf("the scheduled integrity check: %+v, want ok", r)
		}
		cancel()
		<-done
		<-done
	})
}

// MONITORING_GUIDE's command that converts a file made before retention to incremental
// auto_vacuum does convert it (before: a plain VACUUM, which keeps auto_vacuum off).
func TestGuideConvertsAnOldFileToIncrementalVacuum(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("../../MONITORING_GUIDE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`sqlite3 data/remedy.db '([^']*VACUUM[^']*)'`").FindSubmatch(guide)
	if m == nil {
		t.Fatal("MONITORING_GUIDE.md has no `sqlite3 data/remedy.db '…'` command for older files")
	}
	path := filepath.Join(t.TempDir(), RemedyFile)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)                                                             // one session, as the sqlite3 shell's
	if _, err := db.Exec(`CREATE TABLE t(x); INSERT INTO t VALUES (1)`); err != nil { // auto_vacuum off, as before retention
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(m[1]), ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	var mode int
	if err := db.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum %d after the guide's command %q (%v), want 2", mode, m[1], err)
	}
}
