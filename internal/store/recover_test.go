package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// corrupt overwrites n pages in the middle of a closed database file with garbage.
func corrupt(t testing.TB, path string, firstPage, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	garbage := []byte(strings.Repeat("\xab\xcd\xef\x01", 1024)) // one 4 KiB page
	for p := firstPage; p < firstPage+n; p++ {
		if _, err := f.WriteAt(garbage, int64(p)*4096); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptFileIsRebuiltFromReadableRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSink()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema, Events: s.add})
	if err != nil {
		t.Fatal(err)
	}
	var evs []engine.Event
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 3000; i++ {
		evs = append(evs, engine.Event{Time: t0.Add(time.Duration(i) * time.Second), Code: "QUEUE_STUCK",
			Labels: map[string]string{"queue": fmt.Sprintf("q%d", i%7)}, Message: strings.Repeat("x", 40)})
	}
	if err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Two state rows whose JSON no longer parses (a bot wrote half a document).
	for _, row := range [][2]string{{"good", `{"step":2}`}, {"torn1", `{"step":`}, {"torn2", `not json`}} {
		db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES (?, ?, 1)`, row[0], row[1])
	}
	db.Close()              // checkpoints the WAL into the file
	corrupt(t, path, 45, 4) // data pages of events (the tables' root pages come first)

	// Opened as it is (without Repair; this is the CLEAN_DATA path).
	db, err = Open(ctx, Options{Path: path, Schema: RemedySchema, Events: s.add})
	if err != nil {
		t.Fatalf("open after corruption: %v", err)
	}
	defer db.Close()
	if err := db.Check(ctx); !errors.Is(err, ErrCorrupt) || !s.has("DB_CORRUPT") {
		t.Fatalf("check: %v, events %v", err, s.codes())
	}
	rep, err := db.Clean(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Backup == "" {
		t.Fatal("no backup")
	}
	if _, err := os.Stat(rep.Backup); err != nil {
		t.Fatalf("backup missing: %v", err)
	}
	var events, state TableReport
	for _, tr := range rep.Tables {
		switch tr.Table {
		case "events":
			events = tr
		case "state":
			state = tr
		}
	}
	if events.Copied < 2000 || events.Copied >= 3000 || events.Unreadable == 0 {
		t.Fatalf("events: %+v (want most rows copied and the damaged range reported)", events)
	}
	if state.Copied != 1 || state.Quarantined != 2 {
		t.Fatalf("state: %+v", state)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatalf("rebuilt file: %v", err)
	}
	var q []string
	db.Select(ctx, &q, `SELECT data FROM quarantine WHERE tbl = 'state' ORDER BY row_id`)
	if len(q) != 2 || !strings.Contains(q[0], `"key":"torn1"`) {
		t.Fatalf("quarantine %v", q)
	}
	// The database works normally afterwards.
	if err := db.InsertEvent(ctx, engine.Event{Time: time.Now(), Code: "AFTER"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil || !s.has("DB_OK") {
		t.Fatalf("check after rebuild: %v", err)
	}
}

func TestGarbageHeaderIsNotADatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	corrupt(t, path, 0, 1) // the header page
	_, err = Open(ctx, Options{Path: path, Schema: RemedySchema})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a file with a garbage header: %v", err)
	}
}

func TestQuarantineJSONInALiveDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTest(t, newSink())
	db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('a', '{"ok":1}', 1), ('b', '{"ok":', 1)`)
	db.Exec(ctx, `INSERT INTO queue_items(queue, payload, enqueued, updated) VALUES ('in', '{"text":"hi"}', 1, 1), ('in', '{{', 1, 1)`)
	rep, err := db.Clean(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backup != "" {
		t.Fatal("a healthy file was rebuilt")
	}
	var n, q int
	db.Get(ctx, &n, `SELECT (SELECT count(*) FROM state) + (SELECT count(*) FROM queue_items)`)
	db.Get(ctx, &q, `SELECT count(*) FROM quarantine`)
	if n != 2 || q != 2 {
		t.Fatalf("%d rows left, %d quarantined (%s)", n, q, rep)
	}
}

func TestFullMetricsAreShedAndEventsStayWritable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := newSink()
	m, err := OpenMetrics(ctx, Options{Path: filepath.Join(dir, "monitoring_metrics.sqlite"), Events: s.add})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	main := openTest(t, s)
	// The metrics file may not grow past its current size plus a few pages.
	var pages int
	m.DB().Get(ctx, &pages, `PRAGMA page_count`)
	if _, err := m.DB().Exec(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+4)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var shedErr error
	for i := 0; i < 200 && shedErr == nil; i++ {
		pts := make([]Point, 100)
		for j := range pts {
			pts[j] = Point{Time: t0.Add(time.Duration(i*100+j) * time.Millisecond), Name: "cpu_percent", Value: float64(j)}
		}
		shedErr = m.Insert(ctx, pts)
	}
	if !errors.Is(shedErr, ErrShed) || !m.Shedding() || m.Shed() == 0 || !s.has("DB_FULL") {
		t.Fatalf("err %v, shedding %v, shed %d, events %v", shedErr, m.Shedding(), m.Shed(), s.codes())
	}
	// Later samples are dropped at once, counted, without touching the disk.
	before := m.Shed()
	if err := m.Insert(ctx, []Point{{Time: t0, Name: "x", Value: 1}}); !errors.Is(err, ErrShed) || m.Shed() != before+1 {
		t.Fatalf("while shedding: %v", err)
	}
	// Events and alerts go to remedy.db, which still takes writes.
	if err := main.InsertEvent(ctx, engine.Event{Time: t0, Code: "DB_FULL"}); err != nil {
		t.Fatalf("event write while metrics are full: %v", err)
	}
	if _, err := main.Exec(ctx, `INSERT INTO alerts(fingerprint, ts, policy, severity, state) VALUES ('f', 1, 'db-full', 'critical', 'firing')`); err != nil {
		t.Fatalf("alert write while metrics are full: %v", err)
	}
	// CLEAN_DATA target metrics: space comes back (here: the limit is raised, as if old
	// samples were pruned), a probe write succeeds, and shedding stops.
	m.DB().Exec(ctx, `PRAGMA max_page_count = 1000000`)
	if _, err := m.Prune(ctx, t0, DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if m.Shedding() {
		t.Fatal("still shedding after prune")
	}
	if err := m.Insert(ctx, []Point{{Time: t0, Name: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
}

func TestOnFullFreesSpaceForPriorityWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	reserve, err := NewReserve(filepath.Join(dir, ".reserve"), 1<<20)
	if err != nil || !reserve.Held() {
		t.Fatalf("reserve: %v", err)
	}
	var db *DB
	released := false
	db, err = Open(ctx, Options{Path: filepath.Join(dir, "remedy.db"), Schema: RemedySchema,
		OnFull: func() bool {
			// Releasing the reserve frees real space; here the page limit stands for it.
			released = reserve.Release()
			db.with(func(h *handles) error {
				_, err := h.w.ExecContext(ctx, `PRAGMA max_page_count = 1000000`)
				return err
			})
			return released
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	db.Get(ctx, &pages, `PRAGMA page_count`)
	db.Exec(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages))
	big := strings.Repeat("m", 64*1024)
	if err := db.InsertEvent(ctx, engine.Event{Time: time.Now(), Code: "WA_LOGGED_OUT", Message: big}); err != nil {
		t.Fatalf("priority write failed although the reserve could be released: %v", err)
	}
	if !released || reserve.Held() {
		t.Fatal("reserve not released")
	}
	if err := reserve.Restore(); err != nil || !reserve.Held() {
		t.Fatalf("restore: %v", err)
	}
}

func TestCompactDownsamplesAndBoundsTheFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, err := OpenMetrics(ctx, Options{Path: filepath.Join(t.TempDir(), "m.sqlite")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var pts []Point
	// Three days of a sample every 10 s, plus one 40-day-old sample.
	for ts := now.Add(-72 * time.Hour); ts.Before(now); ts = ts.Add(10 * time.Second) {
		pts = append(pts, Point{Time: ts, Name: "cpu_percent", Value: float64(ts.Second())})
	}
	pts = append(pts, Point{Time: now.Add(-40 * 24 * time.Hour), Name: "cpu_percent", Value: 1})
	if err := m.Insert(ctx, pts); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Compact(ctx, now, DefaultRetention)
	if err != nil {
		t.Fatal(err)
	}
	raw, rollups, _ := m.Count(ctx)
	// 48 h of raw samples stay; the 24 h before become 1440 one-minute rollups; the
	// 40-day-old one is rolled up and then dropped by the 30-day retention.
	if raw != 48*360 || rollups != 24*60 || rep.RollupsDeleted != 1 {
		t.Fatalf("raw %d, rollups %d, report %+v", raw, rollups, rep)
	}
	var avg float64
	m.DB().Get(ctx, &avg, `SELECT avg FROM samples_1m LIMIT 1`)
	if avg != 25 { // seconds 0,10,…,50 in every minute
		t.Fatalf("rollup average %v, want 25", avg)
	}
	got, err := m.Samples(ctx, now.Add(-time.Minute), now)
	if err != nil || len(got) != 6 || got[0].Values["cpu_percent"] != 0 {
		t.Fatalf("samples for replay: %v %v", err, got)
	}
}

func TestPoolStats(t *testing.T) {
	t.Parallel()
	db := openTest(t, newSink())
	var n int
	db.Get(context.Background(), &n, `SELECT 1`)
	st := db.Stats()
	if st.Open < 2 || st.InUse != 0 {
		t.Fatalf("%+v", st)
	}
}

// Pruning a file that is full to the last page: the rollups need pages before the raw
// rows go, so Prune drops the samples past the retention without them, and writes work
// again without any more room being given.
func TestPruneFreesAFullFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSink()
	m, err := OpenMetrics(ctx, Options{Path: filepath.Join(t.TempDir(), "monitoring_metrics.sqlite"), Events: s.add})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Now()
	var old []Point
	for i := range 20000 {
		old = append(old, Point{Time: now.Add(-72*time.Hour + time.Duration(i)*time.Second), Name: "cpu_percent", Value: 1})
	}
	if err := m.Insert(ctx, old); err != nil {
		t.Fatal(err)
	}
	var pages int
	m.DB().Get(ctx, &pages, `PRAGMA page_count`)
	m.DB().Exec(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages))
	for i := 0; !m.Shedding(); i++ {
		if i > 10000 {
			t.Fatal("never full")
		}
		m.Insert(ctx, []Point{{Time: now, Name: "x", Value: float64(i)}})
	}
	rep, err := m.Prune(ctx, now, DefaultRetention)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if m.Shedding() || rep.RawDeleted < 20000 {
		t.Fatalf("shedding %v after %+v", m.Shedding(), rep)
	}
	if err := m.Insert(ctx, []Point{{Time: now, Name: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
}

// A file too damaged to open (its first page, with the header and the schema, is
// garbage) does not stop remedy from starting: Open with Repair (as the data directory
// opens it) rebuilds it, keeps the damaged copy and reports DB_CORRUPT.
func TestOpenRebuildsAnUnopenableFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('k', '{}', 1)`)
	db.Close()
	corrupt(t, path, 0, 1)
	s := newSink()
	db, err = Open(ctx, Options{Path: path, Schema: RemedySchema, Events: s.add, Repair: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	if !s.has("DB_CORRUPT") {
		t.Fatalf("events %v", s.codes())
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("the rebuilt file: %v", err)
	}
	backups, _ := filepath.Glob(path + ".corrupt-*")
	if len(backups) == 0 {
		t.Fatal("the damaged file was not kept")
	}
	if _, err := db.Exec(ctx, `INSERT INTO state(key, data, updated) VALUES ('new', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
}

// A file found corrupt at open is rebuilt, and what the operator is told names the file
// kept aside and the rows lost: the DB_CORRUPT event (the alert's text) and the CLEAN_DATA
// it starts (the audit). Before, the event came before the rebuild and said only
// "corrupt", and CLEAN_DATA reported "nothing to repair".
func TestRepairAtOpenNamesTheMovedFileAndTheRowsLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "remedy.db")
	db, err := Open(ctx, Options{Path: path, Schema: RemedySchema})
	if err != nil {
		t.Fatal(err)
	}
	var evs []engine.Event
	for i := 0; i < 3000; i++ {
		evs = append(evs, engine.Event{Time: time.Unix(int64(i), 0), Code: "QUEUE_STUCK", Message: strings.Repeat("x", 40)})
	}
	if err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	corrupt(t, path, 45, 4)
	s := newSink()
	d, err := OpenData(ctx, dir, s.add)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	backups, _ := filepath.Glob(path + ".corrupt-*")
	var msg string
	s.mu.Lock()
	for _, ev := range s.events {
		if ev.Code == "DB_CORRUPT" {
			msg = ev.Message
		}
	}
	s.mu.Unlock()
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	var kept int
	d.Main.Get(ctx, &kept, `SELECT count(*) FROM events`)
	lost := 3000 - kept
	want := fmt.Sprintf("rebuilt when remedy opened it: damaged file moved to %s; %d of 3000 rows kept, %d lost (they stay in the moved file); events: %d lost", backups[0], kept, lost, lost)
	if lost == 0 || !strings.Contains(msg, want) {
		t.Fatalf("DB_CORRUPT message:\n%s\nwant it to contain:\n%s", msg, want)
	}
	rep, err := d.CleanDB(ctx) // the CLEAN_DATA that db-corrupt runs
	if err != nil || rep != want {
		t.Fatalf("CLEAN_DATA after the rebuild at open: %q %v\nwant %q", rep, err, want)
	}
	if rep, _ := d.CleanDB(ctx); rep != "nothing to repair" {
		t.Fatalf("a second CLEAN_DATA: %q", rep)
	}
}
